import { expect, test } from 'bun:test';
import { asInferenceError, InferenceError } from './errors.ts';

test("asInferenceError wraps a foreign error with the code, the cause's message, details and a hint", () => {
  const cause = new Error('libllama.so: cannot open shared object file');
  const e = asInferenceError(
    cause,
    'ENGINE_UNAVAILABLE',
    'no usable prebuilt llama.cpp binary',
    { platform: 'linux-x64' },
    'install it',
  );
  expect(e).toBeInstanceOf(InferenceError);
  expect(e.toJSON()).toEqual({
    code: 'ENGINE_UNAVAILABLE',
    message: 'no usable prebuilt llama.cpp binary: libllama.so: cannot open shared object file',
    details: { platform: 'linux-x64' },
    hint: 'install it',
  });
  expect(e.cause).toBe(cause);
  // Without a hint there is none; an InferenceError passes through as it is.
  expect(asInferenceError('boom', 'INFERENCE_FAILED', 'failed').hint).toBeUndefined();
  const own = new InferenceError('MODEL_NOT_FOUND', 'absent');
  expect(asInferenceError(own, 'ENGINE_UNAVAILABLE', 'other', {}, 'other hint')).toBe(own);
});
