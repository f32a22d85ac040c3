/**
 * `synod-verify` over transcripts made here from fresh keys (forged.test-helpers.ts), and over relay
 * doubles serving them: what an auditor is shown of who vouched for an answer, and that what others
 * wrote cannot rewrite the report.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Ran, runCommand } from '../../../edge/src/test-servers.ts';
import { forgeTranscript, relayDouble } from './forged.test-helpers.ts';
import { printableJson } from './printable.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const dir = mkdtempSync(join(tmpdir(), 'synod-verify-forged-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, value: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, typeof value === 'string' ? value : JSON.stringify(value));
  return f;
}

const verify = (args: string[], stdin?: string): Promise<Ran> =>
  runCommand([process.execPath, MAIN, ...args], stdin === undefined ? {} : { stdin });

describe('what others wrote is printed escaped', () => {
  // ESC[8m makes a terminal hide what follows (here the line saying a digest does NOT match); a
  // carriage return and ESC[2K rewrite a line; U+202E reverses the text after it.
  const hostile = 'Paris.\u001b[8m\u001b[2K\rall hold\u202e\u009b';

  test("a winner's output cannot hide the report's lines: its control and invisible characters are escaped", async () => {
    const f = await forgeTranscript({
      members: [{ output: hostile }, { output: hostile }, { output: hostile }],
    });
    const r = await verify([file('ansi.json', f.transcript), '--expect-digest', 'f'.repeat(64)]);
    expect(r.code).toBe(1);
    // (White space, the carriage return too, is shown as one space on the output's line.)
    expect(r.out).toContain('output           Paris.\\u001b[8m\\u001b[2K all hold\\u202e\\u009b');
    expect(r.out).toContain('--expect-digest does NOT match');
    for (const raw of ['\u001b', '\r', '\u202e', '\u009b']) expect(r.out).not.toContain(raw);
    // As JSON: the same characters as \u escapes, the same value once parsed.
    const json = await verify([file('ansi.json', f.transcript), '--json']);
    for (const raw of ['\u001b', '\r', '\u202e', '\u009b']) expect(json.out).not.toContain(raw);
    const parsed = JSON.parse(json.out) as { verdict: { winner: { output: string } } };
    expect(parsed.verdict.winner.output).toBe(hostile);
  });

  test("a relay's history and error bodies are escaped too, on standard output and standard error", async () => {
    const f = await forgeTranscript();
    const relay = relayDouble({
      coordinator: f.coordinator.nodeId,
      served: [{ forged: f }],
      intercept: (u) =>
        u.pathname === '/v1/history'
          ? Response.json({
              items: [
                {
                  requestId: `${f.requestId}\u001b[8m`,
                  status: 'verdict',
                  coordinator: f.coordinator.nodeId,
                  createdAt: 1,
                  verdictDigest: f.verdictDigest,
                  transcriptRoot: f.root,
                },
              ],
              nextCursor: null,
            })
          : u.pathname.startsWith('/v1/verify/')
            ? new Response('\u001b[2Kfailing\u001b[8m', { status: 500 })
            : undefined,
    });
    try {
      const audit = await verify(['--relay', relay.url]);
      expect(audit.code).toBe(1);
      expect(audit.out).toContain(`${f.requestId}\\u001b[8m`);
      expect(audit.out).toContain('answered 500: \\u001b[2Kfailing\\u001b[8m');
      expect(audit.out).not.toContain('\u001b');
      const one = await verify([`${relay.url}/v1/verify/${f.requestId}`]);
      expect(one.code).toBe(2);
      expect(one.err).toContain('answered 500 without a transcript: \\u001b[2Kfailing\\u001b[8m');
      expect(one.err).not.toContain('\u001b');
    } finally {
      relay.stop();
    }
  });

  test('printableJson: DEL, C1, bidi and tag characters as \\u escapes (pairs past the BMP), the same value parsed', () => {
    const value = { s: 'a\u007fb\u0085c\u200fd\u{e0041}e\\f"g\nh' };
    const text = printableJson(value);
    expect(text).toContain('a\\u007fb\\u0085c\\u200fd\\udb40\\udc41e\\\\f\\"g\\nh');
    expect(JSON.parse(text)).toEqual(value);
  });
});
