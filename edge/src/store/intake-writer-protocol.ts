import type { IntakeEntry } from './intake-store.ts';

/**
 * Messages to the admission writer thread (intake-writer.worker.ts). A batch travels as one string
 * (`encodeBatch`), and its outcomes come back as JSON text (`AdmissionOutcome[]`): a string crosses
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

type EntryMembers = [
  requestId: string,
  callerId: string,
  quotaPerDay: number,
  day: string,
  createdAt: number,
  deadline: number,
  idempotencyKey: string | null,
  bodyDigest: string | null,
];

/**
 * A batch of entries as one string, two lines each: the entry's members but the body as a JSON array,
 * then the body's text as it will be stored. JSON text holds no raw line break, so the body, already
 * written once, is not escaped or parsed again on its way to the database.
 */
export function encodeBatch(entries: readonly IntakeEntry[]): string {
  let text = '';
  for (const e of entries) {
    if (e.bodyJson.includes('\n')) throw new TypeError('an admission body holds a raw line break');
    const members: EntryMembers = [
      e.requestId,
      e.callerId,
      e.quotaPerDay,
      e.day,
      e.createdAt,
      e.deadline,
      e.idempotency?.key ?? null,
      e.idempotency?.bodyDigest ?? null,
    ];
    text += `${JSON.stringify(members)}\n${e.bodyJson}\n`;
  }
  return text;
}

/** The entries of an `encodeBatch` text; a TypeError if it is not one. */
export function decodeBatch(text: string): IntakeEntry[] {
  const lines = text.split('\n');
  if (lines.pop() !== '' || lines.length % 2 !== 0) throw new TypeError('malformed admission batch');
  const entries: IntakeEntry[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    let m: unknown;
    try {
      m = JSON.parse(lines[i] as string);
    } catch {
      m = undefined;
    }
    if (!isEntryMembers(m)) throw new TypeError(`malformed admission batch entry ${i / 2}`);
    const [requestId, callerId, quotaPerDay, day, createdAt, deadline, key, bodyDigest] = m;
    entries.push({
      requestId,
      callerId,
      quotaPerDay,
      day,
      ...(key !== null && bodyDigest !== null ? { idempotency: { key, bodyDigest } } : {}),
      createdAt,
      deadline,
      bodyJson: lines[i + 1] as string,
    });
  }
  return entries;
}

function isEntryMembers(m: unknown): m is EntryMembers {
  return (
    Array.isArray(m) &&
    m.length === 8 &&
    typeof m[0] === 'string' &&
    typeof m[1] === 'string' &&
    typeof m[2] === 'number' &&
    typeof m[3] === 'string' &&
    typeof m[4] === 'number' &&
    typeof m[5] === 'number' &&
    (m[6] === null ? m[7] === null : typeof m[6] === 'string' && typeof m[7] === 'string')
  );
}
