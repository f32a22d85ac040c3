/**
 * Messages to the admission writer thread (intake-writer.worker.ts). A batch travels as JSON text
 * (`Admission[]`), and its outcomes come back the same way (`AdmissionOutcome[]`): a string crosses
 * threads several times cheaper than the structured clone of the same objects.
 */
export type WriterRequest =
  | { type: 'open'; id: number; url: string; busyTimeoutMs: number; coordinator: string }
  | { type: 'admit'; id: number; batch: string; now: number }
  | { type: 'stats'; id: number }
  | { type: 'close'; id: number };

/** Its answers, one per request, matched by `id`. */
export type WriterResponse =
  | { id: number; ok: true; outcomes?: string; stats?: WriterStats }
  | { id: number; ok: false; error: { message: string; code?: string } };

/** The writer's transactions since it opened the database: how many, admissions in them, the largest. */
export interface WriterStats {
  batches: number;
  admissions: number;
  largest: number;
}
