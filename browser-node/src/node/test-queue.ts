/**
 * For tests: a test double of the inference queue that answers at once with a fixed text and an
 * embedding that differs at each call (as a sampled output would), so a second inference of one request
 * would make a second, different commitment.
 */
export function fixedQueue() {
  let calls = 0;
  return {
    accepting: true,
    running: false,
    capacity: { queued: 0, maxQueue: 4 },
    estimateMs: () => 1,
    submit: async () => {
      calls++;
      return {
        text: `output ${calls}`,
        tokens: 2,
        tokensPerSecond: 100,
        bEmbedding: new Uint8Array(64).fill(calls),
        finishReason: 'stop' as const,
        startedAt: Date.now(),
        finishedAt: Date.now(),
      };
    },
  };
}
