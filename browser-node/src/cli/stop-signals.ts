/**
 * How `synod node` and `synod-relay` take the signals that stop them. A Ctrl-C in a terminal often
 * arrives twice at once: the terminal sends SIGINT to every process of its foreground group, and the
 * parent that started this one (npm, which forwards the signals it gets, or `npm start`, which sends
 * SIGTERM to its children) sends another. Taken as "stop now", that second one ended a node before it
 * had finished the requests it had committed to. So a signal within `SAME_STOP_MS` of the first is the
 * same stop; one after it is a second Ctrl-C, and ends the process at once, by that signal, as without a
 * handler (if stopping hangs).
 */

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** Signals within this of the first are the same stop (a terminal's and a parent's copy of one Ctrl-C). */
export const SAME_STOP_MS = 1_000;

/**
 * Call `stop` once, at the first stop signal; a later one within `SAME_STOP_MS` is ignored, one after it
 * ends the process by that signal. Returns a function that removes the handlers.
 */
export function onStopSignals(
  stop: (signal: StopSignal) => void,
  o: { sameStopMs?: number; now?: () => number } = {},
): () => void {
  const sameStopMs = o.sameStopMs ?? SAME_STOP_MS;
  const now = o.now ?? Date.now;
  let first: number | undefined;
  const remove = () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
  const handlers = STOP_SIGNALS.map((signal) => {
    const handler = () => {
      if (first === undefined) {
        first = now();
        stop(signal);
        return;
      }
      if (now() - first < sameStopMs) return;
      // A second stop, asked for: the default action of the signal (the process ends by it).
      remove();
      process.kill(process.pid, signal);
    };
    return [signal, handler] as const;
  });
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return remove;
}
