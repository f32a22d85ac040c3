/**
 * A Ctrl-C that arrives twice at once (the terminal's SIGINT and the parent's copy) is one stop, which
 * finishes; a second Ctrl-C after it ends the process at once.
 */
import { describe, expect, test } from 'bun:test';
import { resolve } from 'node:path';
import { SAME_STOP_MS } from './stop-signals.ts';

const CHILD = resolve(import.meta.dir, 'stop-signals.child.ts');

async function started() {
  const p = Bun.spawn([process.execPath, CHILD], { stdout: 'pipe', stderr: 'inherit' });
  const reader = p.stdout.getReader();
  let out = '';
  const until = async (text: string) => {
    while (!out.includes(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
  };
  await until('ready');
  const rest = async () => {
    await until('\u0000never');
    return out;
  };
  return { p, until, rest };
}

describe('onStopSignals', () => {
  test('SIGINT and SIGTERM together (a terminal and npm): one stop, which finishes and exits 0', async () => {
    const c = await started();
    c.p.kill('SIGINT');
    c.p.kill('SIGTERM');
    c.p.kill('SIGINT');
    const out = await c.rest();
    expect(await c.p.exited).toBe(0);
    expect(out.match(/stopping/g)).toHaveLength(1);
    // Pending signals may be delivered in either order: whichever came first is the stop.
    expect(out).toMatch(/stopping SIG(INT|TERM)\n/);
    expect(out).toContain('stopped');
  });

  test('a second Ctrl-C after the first one ends the process at once, by the signal', async () => {
    const c = await started();
    c.p.kill('SIGINT');
    await c.until('stopping SIGINT');
    await Bun.sleep(SAME_STOP_MS + 200);
    c.p.kill('SIGINT');
    const out = await c.rest();
    await c.p.exited;
    expect(c.p.signalCode).toBe('SIGINT');
    expect(out).not.toContain('stopped');
  });
});
