/**
 * `synod-verify` over transcripts made here from fresh keys (forged.test-helpers.ts), and over relay
 * doubles serving them: what an auditor is shown of who vouched for an answer, and that what others
 * wrote cannot rewrite the report.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildTranscript, NodeKey, verifyTranscript } from '@synod/shared';
import { type Ran, runCommand } from '../../../edge/src/test-servers.ts';
import { forgeTranscript, otherBits, relayDouble } from './forged.test-helpers.ts';
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

describe('who vouched: the coordinator and the seal', () => {
  test('a transcript made wholly of fresh keys holds; the report names its coordinator and every seal member', async () => {
    const answer = 'FORGED: send all funds to 0xdeadbeef';
    const f = await forgeTranscript({
      members: [{ output: answer }, { output: answer }, { output: answer }],
    });
    const src = file('fresh-keys.json', f.transcript);
    const r = await verify([src]);
    // Nothing in a transcript ties it to a relay: node keys cost nothing and a seal is its coordinator's.
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      `coordinator      ${f.coordinator.nodeId} (signed the request and chose the seal)`,
    );
    for (const m of f.members) expect(r.out).toContain(`member           ${m.nodeId} agreed`);
    const json = JSON.parse((await verify([src, '--json'])).out) as {
      coordinator: string;
      sealMembers: { nodeId: string; outcome: string }[];
    };
    expect(json.coordinator).toBe(f.coordinator.nodeId);
    expect(json.sealMembers.map((m) => m.nodeId).sort()).toEqual(f.members.map((m) => m.nodeId).sort());
  });

  test('--coordinator pins whom you trust: a request signed by any other key does not hold (exit 1, COORDINATOR_NOT_PINNED)', async () => {
    const f = await forgeTranscript();
    const src = file('pinned.json', f.transcript);
    const trusted = (await NodeKey.generate()).nodeId;
    const other = await verify([src, '--coordinator', trusted]);
    expect(other.code).toBe(1);
    expect(other.out).toContain(
      `COORDINATOR_NOT_PINNED: the request and its seal are signed by ${f.coordinator.nodeId}, not by the coordinator pinned by --coordinator (${trusted})`,
    );
    const json = JSON.parse((await verify([src, '--coordinator', trusted, '--json'])).out) as {
      ok: boolean;
      reasons: string[];
    };
    expect(json.ok).toBe(false);
    expect(json.reasons[0]).toStartWith('COORDINATOR_NOT_PINNED: ');
    // One of several ids (the relays over one database), in any case.
    const held = await verify([src, '--coordinator', `${trusted},${f.coordinator.nodeId.toUpperCase()}`]);
    expect(held.code).toBe(0);
    expect(held.out).toContain('coordinator      is the coordinator pinned by --coordinator');
    const bad = await verify([src, '--coordinator', 'abc']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--coordinator must be node ids');
  });
});

describe('attestations, by who signed them', () => {
  /**
   * A relay that dropped one member's honest reveal: it recomputes the verdict (2 of 3 still agree),
   * serves the new digest, root and verdict, and keeps the members' genuine attestations of the old.
   */
  async function droppedReveal() {
    const f = await forgeTranscript();
    const attestations = await Promise.all(f.members.map((k) => f.attest(k)));
    const dropped = f.members[0] as NodeKey;
    const transcript = buildTranscript(
      f.transcript.packets.filter((p) => !(p.type === 'reveal' && p.from === dropped.nodeId)),
    );
    const check = await verifyTranscript(transcript);
    if (!check.ok) throw check.error;
    const answer = {
      ok: true,
      requestId: f.requestId,
      verdictDigest: check.verdictDigest,
      transcriptRoot: check.root,
      verdict: check.verdict,
      transcript,
      attestations,
    };
    return { f, dropped, answer, check };
  }

  test("a seal member's attestation of another verdict is a conflict, said as a warning naming it: it fails nothing (exit 0)", async () => {
    const { f, dropped, answer, check } = await droppedReveal();
    expect(check.verdict.status).toBe('accepted');
    const r = await verify([file('dropped.json', answer)]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      'attestations     0 of 3 seal members attest the derived verdict; 3 attest ANOTHER verdict (ATTESTATION_CONFLICT)',
    );
    expect(r.out).toContain(
      `ATTESTATION_CONFLICT (a warning): seal member ${dropped.nodeId} (NOT_REVEALED in the derived verdict) attests verdict digest ${f.verdictDigest}, not the derived ${check.verdictDigest}`,
    );
    const json = JSON.parse((await verify([file('dropped.json', answer), '--json'])).out) as {
      reasons: string[];
      warnings: string[];
    };
    expect(json.reasons).toEqual([]);
    expect(
      json.warnings.filter((x) => x.startsWith('ATTESTATION_CONFLICT (a warning): seal member ')),
    ).toHaveLength(3);
  });

  test('a relay audit does not fail on such a conflict either', async () => {
    const { f, dropped, answer } = await droppedReveal();
    const relay = relayDouble({
      coordinator: f.coordinator.nodeId,
      served: [{ forged: f, answer: () => Response.json(answer) }],
      intercept: (u) =>
        u.pathname === '/v1/history'
          ? Response.json({
              items: [
                {
                  requestId: f.requestId,
                  status: 'verdict',
                  coordinator: f.coordinator.nodeId,
                  createdAt: 1,
                  verdictDigest: answer.verdictDigest,
                  transcriptRoot: answer.transcriptRoot,
                },
              ],
              nextCursor: null,
            })
          : undefined,
    });
    try {
      const r = await verify(['--relay', relay.url]);
      expect(r.code).toBe(0);
      expect(r.out).toContain('warnings (1 request; they fail nothing):');
      expect(r.out).toContain(
        `ATTESTATION_CONFLICT (a warning): seal member ${dropped.nodeId} (NOT_REVEALED in the derived verdict)`,
      );
    } finally {
      relay.stop();
    }
  });

  test('keys outside the seal are listed apart and counted as nothing, whatever they attest (exit 0)', async () => {
    const f = await forgeTranscript();
    const stranger = await NodeKey.generate();
    const other = await f.attest(stranger, { verdictDigest: 'd'.repeat(64) });
    const members = await Promise.all(f.members.slice(0, 2).map((k) => f.attest(k)));
    const r = await verify([file('outsider.json', f.answer([...members, other]))]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('attestations     2 of 3 seal members attest the derived verdict');
    expect(r.out).toContain(
      'attestations     1 key outside the seal also signed one, not counted (keys cost nothing: they prove nothing about the seal): 0 of the derived verdict, 1 of another',
    );
  });
});

describe('--relay holds every transcript to a coordinator', () => {
  test('a relay that publishes another coordinator than --coordinator fails at once (exit 1), auditing nothing', async () => {
    const f = await forgeTranscript();
    const trusted = (await NodeKey.generate()).nodeId;
    const relay = relayDouble({ coordinator: f.coordinator.nodeId, served: [{ forged: f }] });
    try {
      const r = await verify(['--relay', relay.url, '--coordinator', trusted]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(
        `COORDINATOR_NOT_PINNED: the relay publishes coordinator ${f.coordinator.nodeId} (its /healthz), not one pinned by --coordinator (${trusted}): not audited further`,
      );
      expect(relay.asked.filter((x) => x.startsWith('/v1/'))).toEqual([]);
      // Pinned to it and another (two relays over one database): audited.
      const both = await verify([
        '--relay',
        relay.url,
        '--coordinator',
        `${trusted},${f.coordinator.nodeId}`,
      ]);
      expect(both.code).toBe(0);
      expect(both.out).toContain(`requests signed by: ${f.coordinator.nodeId} (1)`);
    } finally {
      relay.stop();
    }
  });

  test('a relay that names no coordinator: its requests are said signed by another key than its own; --coordinator holds them', async () => {
    const f = await forgeTranscript();
    const relay = relayDouble({ coordinator: null, served: [{ forged: f }] });
    try {
      const unpinned = await verify(['--relay', relay.url]);
      expect(unpinned.code).toBe(0);
      expect(unpinned.out).toContain(
        `signed by ${f.coordinator.nodeId}, not by the relay's own coordinator (none published`,
      );
      const pinned = await verify(['--relay', relay.url, '--coordinator', f.coordinator.nodeId]);
      expect(pinned.code).toBe(0);
      expect(pinned.out).toContain('the relay publishes none (/healthz)');
      const other = await verify(['--relay', relay.url, '--coordinator', (await NodeKey.generate()).nodeId]);
      expect(other.code).toBe(1);
      expect(other.out).toContain('COORDINATOR_NOT_PINNED: the request and its seal are signed by');
    } finally {
      relay.stop();
    }
  });

  test("a history item naming another coordinator than its request's signer does not match", async () => {
    const f = await forgeTranscript();
    const listed = (await NodeKey.generate()).nodeId;
    const relay = relayDouble({
      coordinator: f.coordinator.nodeId,
      served: [{ forged: f, listedCoordinator: listed }],
    });
    try {
      const r = await verify(['--relay', relay.url]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(
        `the history's coordinator ${listed} does not match the derived ${f.coordinator.nodeId}`,
      );
    } finally {
      relay.stop();
    }
  });
});

describe("a relay's rate limit (429) is waited out, never counted as a request that fails", () => {
  const limited = (retryAfter: string) =>
    Response.json(
      { error: { code: 'RATE_LIMITED', message: 'slow down' } },
      { status: 429, headers: { 'retry-after': retryAfter } },
    );

  test('a 429 on the history and on a transcript is retried after its Retry-After: the audit holds (exit 0)', async () => {
    const f = await forgeTranscript();
    const refused = new Set<string>();
    const relay = relayDouble({
      coordinator: f.coordinator.nodeId,
      served: [{ forged: f }],
      // Each path refused once, the first time it is asked.
      intercept: (u) => {
        if (u.pathname === '/healthz' || refused.has(u.pathname)) return undefined;
        refused.add(u.pathname);
        return limited('1');
      },
    });
    try {
      const started = Date.now();
      const r = await verify(['--relay', relay.url]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`audited 1 request of ${relay.url}: 1 hold, 0 do not`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
      // The verdicts' listing twice (refused, then read), the no-consensus listing once.
      expect(relay.asked.filter((x) => x.startsWith('/v1/history'))).toHaveLength(3);
      expect(relay.asked.filter((x) => x.startsWith('/v1/verify/'))).toHaveLength(2);
    } finally {
      relay.stop();
    }
  });

  test('a transcript still rate-limited past the retries is not checked (exit 3), listed apart, not a failure', async () => {
    const [a, b] = [await forgeTranscript(), await forgeTranscript({ createdAt: 1_790_000_001_000 })];
    const relay = relayDouble({
      coordinator: a.coordinator.nodeId,
      served: [{ forged: a }, { forged: b, answer: () => limited('3600') }],
      intercept: (u) => (u.pathname === '/healthz' ? Response.json({ coordinator: 'x' }) : undefined),
    });
    try {
      const r = await verify([
        '--relay',
        relay.url,
        '--coordinator',
        `${a.coordinator.nodeId},${b.coordinator.nodeId}`,
      ]);
      expect(r.code).toBe(3);
      expect(r.out).toContain('1 hold, 0 do not, 1 not checked (rate-limited)');
      expect(r.out).toContain(`  not checked (neither held nor failed):\n  ${b.requestId}\n    - `);
      expect(r.out).toContain('answered 429 (rate limited) 1 time, the last asking to wait 3600 s');
      // A Retry-After longer than the wait left is not waited for.
      expect(relay.asked.filter((x) => x.startsWith(`/v1/verify/${b.requestId}`))).toHaveLength(1);
      const json = JSON.parse(
        (
          await verify([
            '--relay',
            relay.url,
            '--coordinator',
            `${a.coordinator.nodeId},${b.coordinator.nodeId}`,
            '--json',
          ])
        ).out,
      ) as { failures: unknown[]; unchecked: { requestId: string }[] };
      expect(json.failures).toEqual([]);
      expect(json.unchecked.map((u) => u.requestId)).toEqual([b.requestId]);
    } finally {
      relay.stop();
    }
  });

  test('a history rate-limited past the retries stops the audit, said as incomplete (exit 3)', async () => {
    const f = await forgeTranscript();
    const relay = relayDouble({
      coordinator: f.coordinator.nodeId,
      served: [{ forged: f }],
      intercept: (u) => (u.pathname === '/v1/history' ? limited('3600') : undefined),
    });
    try {
      const r = await verify(['--relay', relay.url]);
      expect(r.code).toBe(3);
      expect(r.out).toContain('INCOMPLETE: the history could not be read further');
      // One transcript URL, rate-limited: exit 2 with its own code.
      const one = await verify([`${relay.url}/v1/history`, '--json']);
      expect(one.code).toBe(2);
      expect((JSON.parse(one.out) as { error: { code: string } }).error.code).toBe('VERIFY_RATE_LIMITED');
    } finally {
      relay.stop();
    }
  });

  test('requests to one relay are paced: at most one every 50 ms', async () => {
    const forged = await Promise.all(
      [0, 1, 2, 3].map((i) => forgeTranscript({ createdAt: 1_790_000_000_000 + i })),
    );
    const at: number[] = [];
    const relay = relayDouble({
      coordinator: null,
      served: forged.map((f) => ({ forged: f })),
      intercept: (u) => {
        if (u.pathname.startsWith('/v1/verify/')) at.push(performance.now());
        return undefined;
      },
    });
    try {
      const r = await verify([
        '--relay',
        relay.url,
        '--coordinator',
        forged.map((f) => f.coordinator.nodeId).join(','),
      ]);
      expect(r.code).toBe(0);
      expect(at).toHaveLength(4);
      for (let i = 1; i < at.length; i++)
        expect((at[i] as number) - (at[i - 1] as number)).toBeGreaterThanOrEqual(45);
    } finally {
      relay.stop();
    }
  });
});

describe('--limit audits the newest, both outcomes merged', () => {
  test('verdicts and no-consensus outcomes are audited newest first, one listing merged with the other; a cut is said', async () => {
    const disagreeing = [0, 1, 2].map((n) => ({ bits: otherBits(n), output: `answer ${n}` }));
    const at = (t: number) => 1_790_000_000_000 + t;
    const served = [
      { forged: await forgeTranscript(), createdAt: at(10) },
      { forged: await forgeTranscript({ members: disagreeing }), createdAt: at(20) },
      { forged: await forgeTranscript(), createdAt: at(30) },
      { forged: await forgeTranscript({ members: disagreeing }), createdAt: at(40) },
      { forged: await forgeTranscript(), createdAt: at(50) },
    ];
    expect(served.map((x) => x.forged.verdict.status)).toEqual([
      'accepted',
      'no-consensus',
      'accepted',
      'no-consensus',
      'accepted',
    ]);
    const ids = served.map((x) => x.forged.coordinator.nodeId).join(',');
    const relay = relayDouble({ coordinator: null, served });
    try {
      const r = await verify(['--relay', relay.url, '--coordinator', ids, '--limit', '3']);
      expect(r.code).toBe(0);
      expect(r.out).toContain('audited 3 requests');
      expect(r.out).toContain('  stopped at --limit 3: older requests in the history were not audited');
      const audited = relay.asked.filter((x) => x.startsWith('/v1/verify/'));
      expect(audited).toEqual([4, 3, 2].map((i) => `/v1/verify/${served[i]?.forged.requestId}`));
      const all = await verify(['--relay', relay.url, '--coordinator', ids, '--limit', '5']);
      expect(all.out).toContain('audited 5 requests');
      expect(all.out).not.toContain('stopped at --limit');
    } finally {
      relay.stop();
    }
  });
});

describe('an audit that checked nothing says so, and --json lists what was audited', () => {
  test('an empty history, or a --model that matches nothing, is exit 3 (NOTHING AUDITED), not a pass', async () => {
    const f = await forgeTranscript();
    const relay = relayDouble({ coordinator: f.coordinator.nodeId, served: [{ forged: f }] });
    try {
      const typo = await verify(['--relay', relay.url, '--model', 'storie260K']);
      expect(typo.code).toBe(3);
      expect(typo.out).toContain(
        '  NOTHING AUDITED: the history lists no request with a verdict or a no-consensus outcome (with --model storie260K)',
      );
      const json = JSON.parse(
        (await verify(['--relay', relay.url, '--model', 'storie260K', '--json'])).out,
      ) as {
        checked: number;
        nothing: string;
      };
      expect(json).toMatchObject({ checked: 0, nothing: expect.stringContaining('no request') });
    } finally {
      relay.stop();
    }
  });

  test('--json lists every request audited: its id, coordinator, derived digest, root and outcome', async () => {
    const good = await forgeTranscript();
    const bad = await forgeTranscript({ createdAt: 1_790_000_001_000 });
    const relay = relayDouble({
      coordinator: null,
      served: [
        { forged: good },
        // Its listing claims another root: it fails.
        { forged: bad, answer: () => Response.json({ ...bad.answer(), transcriptRoot: 'e'.repeat(64) }) },
      ],
    });
    try {
      const r = await verify([
        '--relay',
        relay.url,
        '--coordinator',
        `${good.coordinator.nodeId},${bad.coordinator.nodeId}`,
        '--json',
      ]);
      expect(r.code).toBe(1);
      const report = JSON.parse(r.out) as { items: unknown[] };
      expect(report.items).toEqual([
        {
          requestId: bad.requestId,
          outcome: 'fails',
          coordinator: bad.coordinator.nodeId,
          verdictStatus: 'accepted',
          verdictDigest: bad.verdictDigest,
          transcriptRoot: bad.root,
        },
        {
          requestId: good.requestId,
          outcome: 'holds',
          coordinator: good.coordinator.nodeId,
          verdictStatus: 'accepted',
          verdictDigest: good.verdictDigest,
          transcriptRoot: good.root,
        },
      ]);
    } finally {
      relay.stop();
    }
  });
});

describe('a history prune archive (JSON Lines) is verified line by line', () => {
  /** An archive line of a forged request, as `synod-relay history prune --archive` writes it. */
  const line = (f: Awaited<ReturnType<typeof forgeTranscript>>, over: Record<string, unknown> = {}) =>
    JSON.stringify({
      v: 1,
      requestId: f.requestId,
      status: 'verdict',
      error: null,
      createdAt: 1,
      updatedAt: 2,
      transcript: f.transcript,
      verdictDigest: f.verdictDigest,
      transcriptRoot: f.root,
      verdict: f.verdictPacket,
      attestations: [],
      others: [],
      ...over,
    });

  test('each line re-derived; a repeated line counted once; a request never sealed listed; a status that hides a verdict fails', async () => {
    const [a, b, c] = await Promise.all([forgeTranscript(), forgeTranscript(), forgeTranscript()]);
    const neverSealed = 'ab'.repeat(32);
    const archive = [
      line(a),
      line(b),
      line(a), // the same line again: a batch archived twice after a crash
      JSON.stringify({
        v: 1,
        requestId: neverSealed,
        status: 'expired',
        error: 'QUORUM_NOT_MET',
        transcript: null,
      }),
      line(c, { status: 'expired' }), // says it expired, yet carries its signed verdict
      '',
    ].join('\n');
    const f = file('archive.jsonl', archive);
    const r = await verify([f]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `audited 3 requests of the file ${f} (5 lines): 2 hold, 1 do not, 1 never sealed`,
    );
    expect(r.out).toContain('  1 line repeats an earlier one, counted once: line 3 (= line 1)');
    expect(r.out).toContain(`  never sealed (nothing to re-derive):\n  ${neverSealed} (line 4)`);
    expect(r.out).toContain(
      `  ${c.requestId}\n    - the source's status expired does not match the derived verdict`,
    );
    const json = JSON.parse((await verify([f, '--json'])).out) as {
      items: { requestId: string; outcome: string }[];
    };
    expect(json.items.map((i) => [i.requestId, i.outcome])).toEqual([
      [a.requestId, 'holds'],
      [b.requestId, 'holds'],
      [c.requestId, 'fails'],
    ]);
  });

  test('the documented recipe, grep \'"requestId":"<id>"\' FILE | synod-verify -, holds when the line is there twice', async () => {
    const a = await forgeTranscript();
    const r = await verify(['-'], `${line(a)}\n${line(a)}\n`);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      'audited 1 request of the standard input (2 lines): 1 hold, 0 do not, 0 never sealed',
    );
    // One line alone is read as before: one transcript's report.
    const one = await verify(['-'], `${line(a)}\n`);
    expect(one.code).toBe(0);
    expect(one.out).toContain(`request ${a.requestId}: the transcript holds`);
    expect(one.out).toContain("the source's status matches");
    // A single line whose status hides its verdict fails too.
    const hidden = await verify(['-'], line(a, { status: 'failed' }));
    expect(hidden.code).toBe(1);
    expect(hidden.out).toContain("the source's status does NOT match: given failed, derived verdict");
  });

  test('an archive of requests never sealed audits nothing (exit 3); a line cut short fails; pinning applies per line', async () => {
    const never = [1, 2].map((n) =>
      JSON.stringify({
        v: 1,
        requestId: String(n).repeat(64),
        status: 'expired',
        error: null,
        transcript: null,
      }),
    );
    const nothing = await verify([file('never.jsonl', never.join('\n'))]);
    expect(nothing.code).toBe(3);
    expect(nothing.out).toContain('NOTHING AUDITED');
    const a = await forgeTranscript();
    const cut = await verify(['-'], `${line(a)}\n${line(a).slice(0, 100)}\n`);
    expect(cut.code).toBe(1);
    expect(cut.out).toContain('line 2 of the standard input is not JSON');
    const pinned = await verify(
      ['-', '--coordinator', (await NodeKey.generate()).nodeId],
      `${line(a)}\n${line(a)}`,
    );
    expect(pinned.code).toBe(1);
    expect(pinned.out).toContain('COORDINATOR_NOT_PINNED');
    const usage = await verify(['-', '--expect-digest', a.verdictDigest], `${line(a)}\n${line(a)}`);
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('holds several lines (an archive)');
  });
});

describe('messages say what is wrong, and where', () => {
  test('a packet that fails its schema is named by its place in the transcript', async () => {
    const f = await forgeTranscript();
    const t = structuredClone(f.transcript) as unknown as {
      packets: { type: string; body: { createdAt: number } }[];
    };
    const at = t.packets.findIndex((p) => p.type === 'commit') + 1;
    (t.packets[at] as { body: { createdAt: number } }).body.createdAt = 2 ** 60;
    const r = await verify([file('too-big.json', t)]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`  - PACKET_INVALID: packets\\[${at}\\]: .*createdAt`));
  });

  test('a packet of the wrong type is named with its article ("an attestation packet, not a verdict")', async () => {
    const f = await forgeTranscript();
    const attestation = await f.attest(f.members[0] as NodeKey);
    const r = await verify([
      file('wrong-type.json', { transcript: f.transcript, status: 'verdict', verdict: attestation }),
    ]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('given an attestation packet, not a verdict');
  });

  test("a relay's error is quoted whole, with its details, not cut at 200 characters", async () => {
    const f = await forgeTranscript();
    const message = `request ${f.requestId} has no verdict (status expired); ${'its coordinator gave up waiting. '.repeat(6)}end`;
    const relay = relayDouble({
      coordinator: f.coordinator.nodeId,
      served: [
        {
          forged: f,
          answer: () =>
            Response.json(
              {
                ok: false,
                error: {
                  code: 'NO_VERDICT',
                  message,
                  details: { status: 'expired', error: 'QUORUM_NOT_MET', request: { v: 1 } },
                },
              },
              { status: 409 },
            ),
        },
      ],
    });
    try {
      const r = await verify([`${relay.url}/v1/verify/${f.requestId}`]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(
        `answered 409 without a transcript: NO_VERDICT: ${message} (details: status expired, error QUORUM_NOT_MET, request (an object))`,
      );
    } finally {
      relay.stop();
    }
  });
});

describe('what a transcript that holds does not prove (docs/auditing.md)', () => {
  test('a frame of quorum 1 whose only seal member is its coordinator holds: pin the coordinator, read the seal', async () => {
    const self = await NodeKey.generate();
    const f = await forgeTranscript({
      coordinator: self,
      members: [{ key: self, output: 'Whatever I say.' }],
      quorum: 1,
    });
    const r = await verify([file('self-sealed.json', f.transcript)]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('seal             1 member, 1 needed to agree; 1 agreed');
    expect(r.out).toContain(`coordinator      ${self.nodeId} (signed the request and chose the seal)`);
    expect(r.out).toContain(`member           ${self.nodeId} agreed, the winner`);
  });
});

test('a relay whose history repeats a page under a cursor is read to its end, not for ever', async () => {
  const f = await forgeTranscript();
  const item = {
    requestId: f.requestId,
    status: 'verdict',
    coordinator: f.coordinator.nodeId,
    createdAt: 1,
    verdictDigest: f.verdictDigest,
    transcriptRoot: f.root,
  };
  const relay = relayDouble({
    coordinator: f.coordinator.nodeId,
    served: [{ forged: f }],
    intercept: (u) =>
      u.pathname === '/v1/history'
        ? Response.json({
            items: u.searchParams.get('status') === 'verdict' ? [item] : [],
            nextCursor: 'again',
          })
        : undefined,
  });
  try {
    const r = await verify(['--relay', relay.url, '--limit', '10']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('audited 1 request');
    expect(relay.asked.filter((a) => a.startsWith('/v1/history')).length).toBeLessThan(6);
  } finally {
    relay.stop();
  }
}, 30_000);
