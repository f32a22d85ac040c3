/** Test child of stop-signals.test.ts: prints "ready", then "stopping SIG…" once, then "stopped" after 1.5 s. */
import { onStopSignals } from './stop-signals.ts';

onStopSignals((signal) => {
  console.log(`stopping ${signal}`);
  setTimeout(() => {
    console.log('stopped');
    process.exit(0);
  }, 1_500);
});
console.log('ready');
setInterval(() => undefined, 1_000);
