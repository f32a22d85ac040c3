/**
 * TEST DOUBLE of inference-worker.ts (used by restarting-embedder.test.ts): the real worker, its
 * embedders and its protocol, except that an `embed-bits` of the text `crash:exit` ends the thread (as
 * a WASM abort or running out of memory ends it: no answer, no error event, under Bun a `close`) and one
 * of `crash:throw` throws out of the message loop (an uncaught error: an `error` event).
 */
import './inference-worker.ts';
import type { WorkerRequest } from './worker-protocol.ts';

declare const self: { onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null };

const serve = self.onmessage;
self.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === 'embed-bits' && msg.text === 'crash:exit') process.exit(134);
  if (msg.type === 'embed-bits' && msg.text === 'crash:throw') {
    setTimeout(() => {
      throw new Error('the embedder crashed');
    });
    return;
  }
  serve?.(event);
};
