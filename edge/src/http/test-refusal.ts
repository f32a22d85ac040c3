import { HttpError } from './errors.ts';

/**
 * For tests of the HTTP bounds: the `HttpError` that `f` throws, or undefined when it throws nothing
 * (anything else it throws is rethrown).
 */
export function refusal(f: () => unknown): HttpError | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  return undefined;
}
