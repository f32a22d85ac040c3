import { VerifyInputError } from './verify-input.ts';

/**
 * GET a URL as JSON text, within `timeoutS`; a network failure or timeout is a `VerifyInputError` naming
 * `what` was fetched. The status is the caller's to judge.
 */
export async function fetchText(
  url: string,
  timeoutS: number,
  what: string,
): Promise<{ status: number; ok: boolean; text: string }> {
  let r: Response;
  try {
    r = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutS * 1000),
    });
  } catch (e) {
    throw new VerifyInputError(`could not fetch the ${what} at ${url}: ${(e as Error).message}`);
  }
  return { status: r.status, ok: r.ok, text: await r.text() };
}
