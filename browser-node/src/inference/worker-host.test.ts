import { describe, expect, test } from 'bun:test';
import { InferenceError } from './errors.ts';
import { type HostedRequest, serveInferenceWorker, type WorkerScope } from './worker-host.ts';
import type { WorkerResponse } from './worker-protocol.ts';

type Spec = { kind: string };

/** The message loop on a scope of our own: post a request, get the answer it posts back. */
function host() {
  const answers: WorkerResponse[] = [];
  const scope: WorkerScope<Spec, Spec> = { postMessage: (m) => answers.push(m), onmessage: null };
  serveInferenceWorker<Spec, Spec>(scope, {
    engine(spec) {
      throw new InferenceError('ENGINE_UNAVAILABLE', `no engine ${spec.kind}`);
    },
    embedder(spec) {
      throw new InferenceError('ENGINE_UNAVAILABLE', `no embedder ${spec.kind}`);
    },
  });
  return async (msg: HostedRequest<Spec, Spec>): Promise<WorkerResponse> => {
    const before = answers.length;
    scope.onmessage?.({ data: msg } as MessageEvent<HostedRequest<Spec, Spec>>);
    while (answers.length === before) await Bun.sleep(1);
    return answers[before] as WorkerResponse;
  };
}

describe('serveInferenceWorker', () => {
  test('every request gets a typed answer: unknown types, missing engines, refused specs', async () => {
    const send = host();
    const unknown = await send({ type: 'reboot', id: 1 } as unknown as HostedRequest<Spec, Spec>);
    expect(unknown).toMatchObject({ type: 'error', id: 1, error: { code: 'INFERENCE_INVALID_INPUT' } });
    const notLoaded = await send({ type: 'embed', id: 2, texts: ['a'] });
    expect(notLoaded).toMatchObject({ type: 'error', id: 2, error: { code: 'ENGINE_NOT_LOADED' } });
    const refused = await send({ type: 'load-embedder', id: 3, spec: { kind: 'nope' } });
    expect(refused).toMatchObject({ type: 'error', id: 3, error: { code: 'ENGINE_UNAVAILABLE' } });
    expect(await send({ type: 'unload-engine', id: 4 })).toEqual({ type: 'result', id: 4, value: null });
  });
});
