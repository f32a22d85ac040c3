/**
 * `FailingWriterDouble`: a test double of intake-writer.worker.ts (used by intake-writer-thread.test.ts)
 * that speaks the same protocol and answers every admission `created` without a database, except a
 * batch holding the request id `exit` (the thread exits) or `hang` (it is never answered, while the
 * thread stays alive). It tests how `IntakeWriterThread` survives its thread dying or hanging; the real
 * worker is tested against libSQL in the same file.
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
  if (batch.some((a) => a.requestId === 'hang')) return;
  const outcomes: AdmissionOutcome[] = batch.map((a) => ({
    kind: 'created',
    requestId: a.requestId,
    usedToday: 1,
  }));
  self.postMessage({ id: msg.id, ok: true, outcomes: JSON.stringify(outcomes) });
};
