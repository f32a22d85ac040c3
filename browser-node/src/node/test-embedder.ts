/**
 * For tests: a test double of a coordinator's embedder (`ReembedConfig.embed`) that records the texts it
 * is asked to embed, in the order the calls came, and how many ran at once. Made `held`, every call waits
 * until `release()` (then every call, held or later, goes through at once): what was queued meanwhile
 * shows the order the queue picks. Bits: `bitsOf(text)`, 64 bytes of 1 unless given.
 */
export function recordingEmbedder(
  o: { held?: boolean; bitsOf?: (text: string) => Uint8Array; fails?: (text: string) => boolean } = {},
) {
  let open = o.held !== true;
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const double = {
    /** The texts embedded, in the order the calls came. */
    calls: [] as string[],
    /** Calls running now, and the most that ever ran at once. */
    running: 0,
    maxRunning: 0,
    /** Called at each call, before it waits (a test reads the coordinator's state there). */
    onCall: (_text: string) => {},
    async embed(text: string): Promise<Uint8Array> {
      double.calls.push(text);
      double.onCall(text);
      double.running++;
      double.maxRunning = Math.max(double.maxRunning, double.running);
      try {
        if (!open) await gate;
        if (o.fails?.(text)) throw new Error(`no embedding for ${text.slice(0, 16)}`);
        return o.bitsOf?.(text) ?? new Uint8Array(64).fill(1);
      } finally {
        double.running--;
      }
    },
    release() {
      open = true;
      release();
    },
  };
  return double;
}
