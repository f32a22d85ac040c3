/**
 * `ExitingWriterDouble`: a test double of intake-writer.worker.ts (used by intake-writer-thread.test.ts)
 * that speaks the same protocol, answers every admission `created` without a database, and exits the
 * thread when a batch holds the request id `exit`. It tests how `IntakeWriterThread` survives its
 * thread dying; the real worker is tested against libSQL in the same file.
 */
import type { AdmissionOutcome } from './intake-store.ts';
import { decodeBatch, type WriterRequest, type WriterResponse } from './intake-writer-protocol.ts';

declare const self: {
  postMessage(message: WriterResponse): void;
  onmessage: ((event: MessageEvent<WriterRequest>) => void) | null;
};

self.onmessage = (event) => {
  const msg = event.data;
  if (msg.type !== 'admit') {
    self.postMessage({ id: msg.id, ok: true });
    return;
  }
  const batch = decodeBatch(msg.batch);
  if (batch.some((a) => a.requestId === 'exit')) process.exit(1);
  const outcomes: AdmissionOutcome[] = batch.map((a) => ({ kind: 'created', requestId: a.requestId }));
  self.postMessage({ id: msg.id, ok: true, outcomes: JSON.stringify(outcomes) });
};
