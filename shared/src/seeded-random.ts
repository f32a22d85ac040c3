/**
 * mulberry32: a small, fast, seedable PRNG giving floats in [0, 1), deterministic for a seed. Not for
 * keys, nonces or anything secret (those come from the caller's CSPRNG); for simulations, test data and
 * the in-memory network's latency, loss and reordering.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
