/** For tests: wait until `cond` holds (checked every `everyMs`), or fail after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 30_000, everyMs = 20): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting for a condition');
    await Bun.sleep(everyMs);
  }
}
