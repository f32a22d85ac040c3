/**
 * `synod-verify` as an auditor runs it: over the protocol's golden transcripts (shared/test-vectors),
 * over forged ones, from standard input, and from a relay's URL, including a relay that lies.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type AnyPacket,
  buildTranscript,
  computeCommitment,
  NodeKey,
  outputDigest,
  type Packet,
  packetId,
  signPacket,
  type Transcript,
  type Verdict,
  verdictDigest,
} from '@synod/shared';
import { requests, verdicts } from '@synod/shared/history';
import { eq } from 'drizzle-orm';
import { archiveRecord } from '../../../edge/src/store/history-prune.ts';
import { startTestNetwork, type TestNetwork } from '../../../edge/src/test-helpers.ts';
import { type Ran, runCommand } from '../../../edge/src/test-servers.ts';
import { MAX_SOURCE_BYTES } from './fetch-text.ts';
import { forgeTranscript } from './forged.test-helpers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const dir = mkdtempSync(join(tmpdir(), 'synod-verify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Scenario {
  name: string;
  transcript: { packets: { type: string; body: Record<string, unknown> }[] };
  verdictDigest: string;
  root: string;
  verdict: { status: string };
}
const scenarios = (JSON.parse(readFileSync(VECTORS, 'utf8')) as { scenarios: Scenario[] }).scenarios;

function file(name: string, value: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify(value));
  return f;
}

function verify(args: string[], stdin?: string): Promise<Ran> {
  return runCommand([process.execPath, MAIN, ...args], stdin === undefined ? {} : { stdin });
}

describe('synod-verify over the golden transcripts', () => {
  test.each(scenarios.map((s) => [s.name, s] as const))(
    '%s: derives the published digest and root',
    async (name, s) => {
      const r = await verify([
        file(`${name}.json`, s.transcript),
        '--expect-digest',
        `0x${s.verdictDigest}`,
        '--expect-root',
        s.root,
      ]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`verdict ${s.verdict.status}`);
      expect(r.out).toContain(`verdict digest   ${s.verdictDigest}`);
      expect(r.out).toContain('--expect-digest matches');
      expect(r.out).toContain('--expect-root matches');
    },
  );

  test('a different expected digest is a failure (exit 1), naming both', async () => {
    const s = scenarios[0] as Scenario;
    const r = await verify([file('expect.json', s.transcript), '--expect-digest', 'f'.repeat(64)]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `--expect-digest does NOT match: given ${'f'.repeat(64)}, derived ${s.verdictDigest}`,
    );
  });

  test('a forged output fails its signature check (exit 1, the code and the packet named)', async () => {
    const s = structuredClone(scenarios[0] as Scenario);
    const reveal = s.transcript.packets.find((p) => p.type === 'reveal');
    if (!reveal) throw new Error('the vector has no reveal');
    reveal.body['output'] = 'The capital of France is Lyon.';
    const r = await verify([file('forged.json', s.transcript)]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('the transcript does NOT hold: PACKET_BAD_SIGNATURE');
  });

  test("a source's claimed digest that is not one is compared, and fails (exit 1); in another case it matches", async () => {
    const s = scenarios[0] as Scenario;
    const bad = await verify([
      file('claim-bad.json', { ok: true, verdictDigest: 'FFFF', transcript: s.transcript }),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain("the source's verdict digest does NOT match: given FFFF");
    const upper = await verify([
      file('claim-upper.json', {
        ok: true,
        verdictDigest: `0x${s.verdictDigest.toUpperCase()}`,
        transcript: s.transcript,
      }),
    ]);
    expect(upper.code).toBe(0);
  });

  test('from standard input, as JSON', async () => {
    const s = scenarios[1] as Scenario;
    const r = await verify(['-', '--json'], JSON.stringify(s.transcript));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      ok: true,
      verdictDigest: s.verdictDigest,
      transcriptRoot: s.root,
    });
  });

  test.each([
    [['--help'], 0, 'usage: synod-verify SOURCE'],
    [[], 2, 'usage: synod-verify SOURCE'],
    [['a.json', 'b.json'], 2, 'usage: synod-verify SOURCE'],
    [['--bogus', 'a.json'], 2, "Unknown option '--bogus'"],
    [['/no/such/file.json'], 2, 'cannot read /no/such/file.json'],
    [['a.json', '--expect-digest', 'abc'], 2, '--expect-digest must be 64 hex digits'],
  ])('%p: exit code %p', async (args, code, message) => {
    const r = await verify(args as string[]);
    expect(r.code).toBe(code);
    expect(r.out + r.err).toContain(message);
  });

  test.each([
    [['--bogus', 'a.json', '--json'], "Unknown option '--bogus'"],
    [['--json'], 'give a SOURCE, or --relay'],
    [['a.json', 'b.json', '--json'], 'give one SOURCE'],
    [['a.json', '--expect-digest', 'abc', '--json'], '--expect-digest must be 64 hex digits'],
    [['a.json', '--timeout-s', '0', '--json'], '--timeout-s must be a number of seconds'],
    [['a.json', '--noise-tolerance-bits', '3', '--json'], '--noise-tolerance-bits goes with --reembed'],
    [['--relay', 'ftp://x', '--json'], '--relay must be an http(s) URL'],
    [
      ['--chain', 'http://127.0.0.1:1', '--oracle', '0x12', '--relay', 'http://127.0.0.1:1', '--json'],
      '--oracle must be a 0x address',
    ],
  ])(
    '%p: a usage error under --json is one JSON value on standard output (VERIFY_USAGE)',
    async (args, message) => {
      const r = await verify(args as string[]);
      expect(r.code).toBe(2);
      const out = JSON.parse(r.out) as { ok: boolean; error: { code: string; message: string } };
      expect(out.ok).toBe(false);
      expect(out.error.code).toBe('VERIFY_USAGE');
      expect(out.error.message).toContain(message);
      expect(r.err).toContain('usage: synod-verify SOURCE');
    },
  );

  test('an input that is not a transcript is exit code 2', async () => {
    const r = await verify([file('not.json', { ok: false })]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('no transcript here');
  });

  test.each([
    ['5', 2],
    ['[]', 2],
    ['{"foo":1}', 2],
    ['{"packets":5}', 2],
    ['{"transcript":"x"}', 2],
    ['{"transcript":{}}', 2],
    ['{"transcript":null}', 2],
    // Shaped as a transcript: verified, and it does not hold.
    ['{"packets":[]}', 1],
    ['{"transcript":{"packets":[]}}', 1],
  ])('%p: exit code %p, whether bare or inside an answer', async (text, code) => {
    const r = await verify(['-', '--json'], text);
    expect(r.code).toBe(code);
    const out = JSON.parse(r.out) as { ok: boolean; error: { code: string } };
    expect(out.error.code).toBe(code === 2 ? 'VERIFY_INPUT_INVALID' : 'TRANSCRIPT_INVALID');
  });

  test('a genuine transcript with a member named twice is refused as ambiguous (exit 2), not verified', async () => {
    const s = scenarios[0] as Scenario;
    const i = s.transcript.packets.findIndex((p) => p.type === 'reveal');
    // The genuine output last: JSON.parse reads the genuine transcript, a reader keeping the first the forged.
    const text = JSON.stringify(s.transcript).replace(
      '"output":',
      '"output":"The capital of France is Lyon.","output":',
    );
    const f = join(dir, 'twice.json');
    writeFileSync(f, text);
    const r = await verify([f, '--expect-digest', s.verdictDigest]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`names "output" twice in packets[${i}].body`);
    expect(r.out).not.toContain('holds');
  });

  test('a text with a lone surrogate ("\\ud800", which has no canonical bytes) does not hold (exit 1, named)', async () => {
    const s = structuredClone(scenarios[0] as Scenario);
    const reveal = s.transcript.packets.find((p) => p.type === 'reveal');
    if (!reveal) throw new Error('the vector has no reveal');
    reveal.body['output'] = 'Paris\uD800';
    const r = await verify([file('surrogate.json', s.transcript)]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('the transcript does NOT hold: TRANSCRIPT_INVALID');
    // Which packet: its place in the transcript.
    const at = s.transcript.packets.indexOf(reveal);
    expect(r.out).toContain(`PACKET_INVALID: packets[${at}]: $.output: lone surrogate in a string`);
    expect(r.err).toBe('');
  });

  test('a deeply nested attestation beside a transcript is listed as malformed, not a crash (exit 1)', async () => {
    const s = scenarios[0] as Scenario;
    const f = join(dir, 'deep.json');
    const depth = 100_000;
    writeFileSync(
      f,
      `{"transcript":${JSON.stringify(s.transcript)},"attestations":[{"from":${'['.repeat(depth)}${']'.repeat(depth)}}]}`,
    );
    const r = await verify([f]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('the transcript holds');
    expect(r.out).toContain('an attestation from ?… does NOT hold: malformed');
    expect(r.err).toBe('');
  });

  test('a source larger than any transcript is refused before it is read whole (exit 2)', async () => {
    const big = join(dir, 'big.json');
    writeFileSync(big, '');
    truncateSync(big, MAX_SOURCE_BYTES + 1);
    const fromFile = await verify([big]);
    expect(fromFile.code).toBe(2);
    expect(fromFile.err).toContain(`the file ${big} is larger than ${MAX_SOURCE_BYTES} bytes`);

    // A URL that sends without end: cut at the bound, however long the sender would go on.
    const chunk = new Uint8Array(1 << 20).fill(0x20);
    let sent = 0;
    const endless = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: () =>
        new Response(
          new ReadableStream({
            pull(c) {
              if (sent > MAX_SOURCE_BYTES + 8 * chunk.length) return c.close();
              sent += chunk.length;
              c.enqueue(chunk);
            },
          }),
        ),
    });
    try {
      const url = `http://127.0.0.1:${endless.port}/v1/verify/${'0'.repeat(64)}`;
      const fromUrl = await verify([url]);
      expect(fromUrl.code).toBe(2);
      expect(fromUrl.err).toContain(`the transcript at ${url} is larger than ${MAX_SOURCE_BYTES} bytes`);
    } finally {
      endless.stop(true);
    }
  }, 60_000);
});

describe('synod-verify against relays', () => {
  let t: TestNetwork;
  beforeAll(async () => {
    t = await startTestNetwork({ nodes: 3 });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  test("a relay's /v1/verify/<id>: verified here, and the relay's claim compared", async () => {
    const post = await fetch(`${t.relay.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
      body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 16 } }),
    });
    const { requestId } = (await post.json()) as { requestId: string };
    let view: { status: string; verdict?: { verdictDigest: string } } = { status: '' };
    for (let i = 0; i < 600 && !['verdict', 'no-consensus', 'expired', 'failed'].includes(view.status); i++) {
      await Bun.sleep(50);
      view = (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as typeof view;
    }
    expect(view.status).toBe('verdict');
    const url = `${t.relay.url}/v1/verify/${requestId}`;
    // The nodes' attestations reach the relay just after the verdict.
    let attestations: unknown[] = [];
    for (let i = 0; i < 400 && attestations.length < 3; i++) {
      attestations = ((await (await fetch(url)).json()) as { attestations: unknown[] }).attestations;
      if (attestations.length < 3) await Bun.sleep(50);
    }
    expect(attestations).toHaveLength(3);
    const r = await verify([url]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`request ${requestId}: the transcript holds, verdict accepted`);
    expect(r.out).toContain(`verdict digest   ${view.verdict?.verdictDigest}`);
    expect(r.out).toContain("the source's verdict digest matches");
    expect(r.out).toContain("the source's request id matches");
    expect(r.out).toContain("the source's verdict (its digest) matches");
    expect(r.out).toContain('attestations     3 of 3 seal members attest the derived verdict');
    // Who vouched: the relay's key coordinated, and the three nodes were its seal.
    expect(r.out).toContain(`coordinator      ${t.relayKey.nodeId} (signed the request and chose the seal)`);

    // A relay that lies about the verdict digest of a genuine transcript is caught.
    const honest = (await (await fetch(url)).json()) as Record<string, unknown>;
    const liar = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: () => Response.json({ ...honest, verdictDigest: 'e'.repeat(64) }),
    });
    // So is one that alters what a node attested (its signature no longer verifies).
    const forged = structuredClone(honest) as {
      attestations: { from: string; body: { verdictDigest: string } }[];
    };
    const victim = forged.attestations[0] as { from: string; body: { verdictDigest: string } };
    victim.body.verdictDigest = 'd'.repeat(64);
    const forger = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json(forged) });
    // So is one that publishes the true digest beside another verdict (another winner and output), or
    // beside another request's id.
    const otherWinner = structuredClone(honest) as { verdict: Verdict };
    if (otherWinner.verdict.winner) {
      otherWinner.verdict.winner.output = 'Once upon a time there was nothing.';
      otherWinner.verdict.winner.nodeId = 'f'.repeat(64);
    }
    const renamed = { ...honest, requestId: 'c'.repeat(64) };
    const claims = [otherWinner, renamed].map((body) =>
      Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json(body) }),
    );
    try {
      const [winnerLie, idLie] = await Promise.all(
        claims.map((c) => verify([`http://127.0.0.1:${c.port}/v1/verify/${requestId}`])),
      );
      expect(winnerLie?.code).toBe(1);
      expect(winnerLie?.out).toContain("the source's verdict digest matches");
      // Named by the fields that differ, not only by two digests.
      expect(winnerLie?.out).toContain(
        "the source's verdict does NOT match the derived one: it differs in winner.nodeId, winner.output (its digest",
      );
      expect(idLie?.code).toBe(1);
      expect(idLie?.out).toContain(`the source's request id does NOT match: given ${'c'.repeat(64)}`);
    } finally {
      for (const c of claims) c.stop(true);
    }
    try {
      const lied = await verify([`http://127.0.0.1:${liar.port}/v1/verify/${requestId}`]);
      expect(lied.code).toBe(1);
      expect(lied.out).toContain("the source's verdict digest does NOT match");
      const altered = await verify([`http://127.0.0.1:${forger.port}/v1/verify/${requestId}`]);
      expect(altered.code).toBe(1);
      expect(altered.out).toContain('attestations     2 of 3 seal members attest the derived verdict');
      expect(altered.out).toContain(
        `an attestation from ${victim.from.slice(0, 16)}… does NOT hold: its signature does not verify`,
      );
    } finally {
      liar.stop(true);
      forger.stop(true);
    }
  }, 120_000);

  /** Ask the relay and wait for the outcome; the request id. */
  async function answered(prompt: string): Promise<string> {
    const post = await fetch(`${t.relay.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
      body: JSON.stringify({ prompt, params: { maxTokens: 12 } }),
    });
    const { requestId } = (await post.json()) as { requestId: string };
    for (let i = 0; i < 600; i++) {
      const { status } = (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as {
        status: string;
      };
      if (status === 'verdict' || status === 'no-consensus') return requestId;
      await Bun.sleep(50);
    }
    throw new Error(`${requestId} got no verdict`);
  }

  test('--relay audits every published verdict; a relay that lies about one is caught', async () => {
    const ids = [await answered('Tom had a red ball'), await answered('The sun was warm')];
    const r = await verify(['--relay', t.relay.url, '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { checked: number; held: number; failures: unknown[] };
    expect(report.checked).toBeGreaterThanOrEqual(2);
    expect(report.held).toBe(report.checked);
    expect(report.failures).toEqual([]);
    const text = await verify(['--relay', `${t.relay.url}/`, '--limit', '1']);
    expect(text.code).toBe(0);
    expect(text.out).toContain(`audited 1 request of ${t.relay.url}: 1 hold, 0 do not`);

    // A relay in front of the real one that publishes another digest for one request in its history,
    // and a forged output in another's transcript.
    const [listed, forged] = ids as [string, string];
    const liar = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const u = new URL(req.url);
        const real = await fetch(`${t.relay.url}${u.pathname}${u.search}`);
        const body = (await real.json()) as Record<string, unknown>;
        if (u.pathname === '/v1/history') {
          const page = body as {
            items: { requestId: string; verdictDigest: string; winnerNodeId: string | null }[];
          };
          for (const i of page.items) {
            if (i.requestId === listed) i.verdictDigest = 'e'.repeat(64);
            // Another winner for the other request: the digest is true, the listing is not.
            if (i.requestId === forged) i.winnerNodeId = 'f'.repeat(64);
          }
        }
        if (u.pathname === `/v1/verify/${forged}`) {
          const tr = body['transcript'] as { packets: { type: string; body: { output?: string } }[] };
          const reveal = tr.packets.find((p) => p.type === 'reveal');
          if (reveal) reveal.body.output = 'Once upon a time there was nothing.';
        }
        return Response.json(body, { status: real.status });
      },
    });
    try {
      const lied = await verify(['--relay', `http://127.0.0.1:${liar.port}`]);
      expect(lied.code).toBe(1);
      expect(lied.out).toMatch(/: \d+ hold, 2 do not/);
      expect(lied.out).toContain(
        `  ${listed}\n    - the history's verdict digest ${'e'.repeat(64)} does not match`,
      );
      expect(lied.out).toContain(`  ${forged}\n    - does not hold: PACKET_BAD_SIGNATURE`);
      expect(lied.out).toContain(`    - the history's winner ${'f'.repeat(64)} does not match`);
    } finally {
      liar.stop(true);
    }
  }, 120_000);

  test('a relay serving a genuine request re-signed under a fresh key, with fresh-key members, is caught: its history names another signer, it is not its own coordinator, and --coordinator fails it', async () => {
    const requestId = await answered('A tall tree');
    const genuine = (await (await fetch(`${t.relay.url}/v1/verify/${requestId}`)).json()) as {
      transcript: Transcript;
    };
    const request = genuine.transcript.packets.find((p) => p.type === 'request') as Packet<'request'>;
    const bits = (genuine.transcript.packets.find((p) => p.type === 'reveal') as Packet<'reveal'>).body
      .bEmbedding;
    // The request id covers the body, not its author: the same id, signed by the liar's own key.
    const forged = await forgeTranscript({
      requestBody: request.body,
      members: [0, 1, 2].map(() => ({ output: 'FORGED ANSWER', bits })),
    });
    expect(forged.requestId).toBe(requestId);
    const attestations = await Promise.all(forged.members.map((k) => forged.attest(k)));
    const liar = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const u = new URL(req.url);
        if (u.pathname === `/v1/verify/${requestId}`) return Response.json(forged.answer(attestations));
        const real = await fetch(`${t.relay.url}${u.pathname}${u.search}`);
        const body = (await real.json()) as Record<string, unknown>;
        if (u.pathname === '/v1/history') {
          // Its listing agrees with the forgery, but for the coordinator it names.
          for (const i of (body as { items: Record<string, unknown>[] }).items) {
            if (i['requestId'] !== requestId) continue;
            Object.assign(i, {
              verdictDigest: forged.verdictDigest,
              transcriptRoot: forged.root,
              winnerNodeId: forged.verdict.winner?.nodeId,
            });
          }
        }
        return Response.json(body, { status: real.status });
      },
    });
    const url = `http://127.0.0.1:${liar.port}`;
    try {
      const r = await verify(['--relay', url]);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/: \d+ hold, 1 do not/);
      expect(r.out).toContain(
        `    - the history's coordinator ${t.relayKey.nodeId} does not match the derived ${forged.coordinator.nodeId}`,
      );
      // Not the relay's own key: said (relays over one database serve each other's requests).
      expect(r.out).toContain(
        `signed by ${forged.coordinator.nodeId}, not by the relay's own coordinator (${t.relayKey.nodeId}, its /healthz)`,
      );
      // Pinned, it fails as not signed by the key trusted.
      const held = await verify(['--relay', url, '--coordinator', t.relayKey.nodeId]);
      expect(held.code).toBe(1);
      expect(held.out).toContain(
        `COORDINATOR_NOT_PINNED: the request and its seal are signed by ${forged.coordinator.nodeId}, not by the coordinator pinned by --coordinator (${t.relayKey.nodeId})`,
      );
      // On its own the forgery holds: only whom it is pinned to tells it from the relay's answer.
      const alone = await verify([`${url}/v1/verify/${requestId}`]);
      expect(alone.code).toBe(0);
      const pinned = await verify([`${url}/v1/verify/${requestId}`, '--coordinator', t.relayKey.nodeId]);
      expect(pinned.code).toBe(1);
      expect(pinned.out).toContain('COORDINATOR_NOT_PINNED');
    } finally {
      liar.stop(true);
    }
  }, 120_000);

  test.each([
    [
      ['--relay', 'http://127.0.0.1:9'],
      'could not fetch the health and coordinator at http://127.0.0.1:9/healthz',
    ],
    [['--relay', 'relay.example'], '--relay must be an http(s) URL'],
    [['--relay', 'http://127.0.0.1:9', 'a.json'], 'give a SOURCE or --relay, not both'],
    [['--relay', 'http://127.0.0.1:9', '--limit', '0'], '--limit must be a whole number >= 1'],
    [['--relay', 'http://127.0.0.1:9', '--limit', '1e3'], '--limit must be a whole number >= 1'],
    [['--relay', 'http://127.0.0.1:9', '--timeout-s', 'Infinity'], '--timeout-s must be a number of seconds'],
    [['a.json', '--timeout-s', '0'], '--timeout-s must be a number of seconds'],
    [['a.json', '--timeout-s', '0x10'], '--timeout-s must be a number of seconds'],
    [['--relay', 'http://127.0.0.1:9', '--expect-digest', 'a'.repeat(64)], '--relay compares each'],
  ])('%p: exit code 2', async (args, message) => {
    const r = await verify(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
  });

  test('a relay whose history is not a page of requests is exit code 2, and nothing is counted', async () => {
    for (const [answer, message] of [
      ['<html>', 'the history is not JSON'],
      [
        '{"items":[{"requestId":"x","verdictDigest":"nope","transcriptRoot":null}],"nextCursor":null}',
        'not a page',
      ],
      ['{"items":"all","nextCursor":null}', 'not a page'],
    ] as const) {
      const odd = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: (req) =>
          new URL(req.url).pathname === '/healthz'
            ? Response.json({ coordinator: t.relayKey.nodeId })
            : new Response(answer),
      });
      try {
        const r = await verify(['--relay', `http://127.0.0.1:${odd.port}`]);
        expect(r.code).toBe(2);
        expect(r.err).toContain(message);
        expect(r.out).toBe('');
      } finally {
        odd.stop(true);
      }
    }
  });

  test('a URL with no transcript behind it is exit code 2', async () => {
    const r = await verify([`${t.relay.url}/v1/verify/${'0'.repeat(64)}`]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('answered 404 without a transcript');
  });

  test("a relay that serves another request's genuine transcript for a URL is caught (exit 1)", async () => {
    const asked = await answered('A red kite');
    const other = await answered('A blue hat');
    const swapper = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch() {
        const real = await fetch(`${t.relay.url}/v1/verify/${other}`);
        return new Response(await real.text(), { status: real.status, headers: real.headers });
      },
    });
    try {
      const r = await verify([`http://127.0.0.1:${swapper.port}/v1/verify/${asked}`]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`request ${other}: the transcript holds`);
      expect(r.out).toContain(`the request asked for does NOT match: given ${asked}, derived ${other}`);
      // Its own URL holds; so does one naming the request in capitals, as relays read it.
      const own = await verify([`http://127.0.0.1:${swapper.port}/v1/verify/${other.toUpperCase()}`]);
      expect(own.code).toBe(0);
      expect(own.out).toContain('the request asked for matches');
    } finally {
      swapper.stop(true);
    }
  }, 120_000);

  test("--reembed: each member output embedded again here; bits that are not a member's output's are caught", async () => {
    const requestId = await answered('A little bird');
    const url = `${t.relay.url}/v1/verify/${requestId}`;
    const ok = await verify([url, '--reembed']);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(
      're-embedded      3 member reveals with use-lite-512 here (tolerance 0 bits): 0 disagree',
    );
    expect(ok.out).toContain("the source's verdict digest matches");

    // Member A reveals the bits of another text (another request's answer) with its own output: A
    // commits to them (a commitment binds the bits a node claims, not that they are its output's), and
    // the coordinator seals that commitment.
    const { transcript } = (await (await fetch(url)).json()) as { transcript: Transcript };
    const elsewhere = await answered('The moon was round');
    const { transcript: other } = (await (await fetch(`${t.relay.url}/v1/verify/${elsewhere}`)).json()) as {
      transcript: Transcript;
    };
    const keys = await Promise.all([39, 40, 41, 42].map((b) => NodeKey.fromSeed(new Uint8Array(32).fill(b))));
    const keyOf = (id: string) => keys.find((k) => k.nodeId === id) as NodeKey;
    const a = transcript.packets.find((p) => p.type === 'reveal') as Packet<'reveal'>;
    const b = other.packets.find((p) => p.type === 'reveal') as Packet<'reveal'>;
    expect(b.body.bEmbedding).not.toBe(a.body.bEmbedding);
    const swapped = { ...a.body, bEmbedding: b.body.bEmbedding };
    const commitment = computeCommitment({ ...swapped, requestId, nodeId: a.from });
    const oldCommit = transcript.packets.find(
      (p) => p.type === 'commit' && p.from === a.from,
    ) as Packet<'commit'>;
    const commit = await signPacket(keyOf(a.from), 'commit', { ...oldCommit.body, commitment });
    const oldSeal = transcript.packets.find((p) => p.type === 'seal') as Packet<'seal'>;
    const seal = await signPacket(keyOf(oldSeal.from), 'seal', {
      ...oldSeal.body,
      members: oldSeal.body.members.map((m) =>
        m.nodeId === a.from ? { ...m, commitment, commitId: packetId(commit) } : m,
      ),
    });
    const reveal = await signPacket(keyOf(a.from), 'reveal', swapped);
    const packets = transcript.packets.map((p) =>
      p === oldCommit ? commit : p === oldSeal ? seal : p === a ? reveal : p,
    ) as AnyPacket[];
    const forged = file('swapped.json', buildTranscript(packets));
    // Without re-embedding it holds: nothing else can tell the bits are not A's output's.
    const blind = await verify([forged]);
    expect(blind.code).toBe(0);
    const caught = await verify([forged, '--reembed']);
    expect(caught.code).toBe(1);
    expect(caught.out).toContain('re-embedded      3 member reveals with use-lite-512 here');
    expect(caught.out).toContain(
      `the bits node ${a.from.slice(0, 16)}… revealed (reveal ${packetId(reveal).slice(0, 16)}…) are NOT its output's`,
    );
    const json = JSON.parse((await verify([forged, '--reembed', '--json'])).out) as {
      ok: boolean;
      reembedded: { disagree: { nodeId: string; revealId: string }[] };
    };
    expect(json.ok).toBe(false);
    expect(json.reembedded.disagree).toEqual([{ nodeId: a.from, revealId: packetId(reveal) }]);
  }, 120_000);

  test.each([
    [['x.json', '--noise-tolerance-bits', '2'], '--noise-tolerance-bits goes with --reembed'],
    [['x.json', '--reembed', '--noise-tolerance-bits', 'x'], '--noise-tolerance-bits goes with --reembed'],
    [['--relay', 'http://127.0.0.1:9', '--reembed'], '--reembed checks one transcript'],
  ])('%p: exit code 2', async (args, message) => {
    const r = await verify(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
  });

  test('--reembed over a frame pinning an embedder this verifier does not have is exit code 2, naming it', async () => {
    const s = scenarios[0] as Scenario;
    const r = await verify([file('golden-reembed.json', s.transcript), '--reembed']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('cannot re-embed with use-lite-512 (file hash fafe7cad');
  });

  test("an archive line (history prune): its coordinator's signed verdict and status are checked against the transcript", async () => {
    const requestId = await answered('A small bird sang');
    const detail = await t.relay.store.getRequest(requestId);
    if (detail === null) throw new Error('no request');
    const line = archiveRecord(detail);
    const ok = await verify(['-'], JSON.stringify(line));
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("the coordinator's signed verdict's signature verifies");
    expect(ok.out).toContain("the coordinator's signed verdict's signer (the coordinator) matches");
    expect(ok.out).toContain("the source's status matches");
    const verdict = line.verdict as Packet<'verdict'>;
    const stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(77));
    const forgeries: [string, unknown, string][] = [
      [
        'a digest altered in the signed packet',
        { ...line, verdict: { ...verdict, body: { ...verdict.body, verdictDigest: 'e'.repeat(64) } } },
        "the coordinator's signed verdict's signature does NOT verify under its signer's key",
      ],
      [
        "the same verdict signed by another key than the request's",
        { ...line, verdict: await signPacket(stranger, 'verdict', verdict.body) },
        "the coordinator's signed verdict's signer (the coordinator) does NOT match",
      ],
      [
        'a status the verdict does not have',
        { ...line, status: 'no-consensus' },
        "the source's status does NOT match: given no-consensus, derived verdict",
      ],
      [
        'a signed verdict that is not a verdict packet',
        { ...line, verdict: { ...verdict, type: 'attestation' } },
        "the coordinator's signed verdict does NOT match",
      ],
    ];
    for (const [what, forged, says] of forgeries) {
      const r = await verify(['-'], JSON.stringify(forged));
      expect({ what, code: r.code }).toEqual({ what, code: 1 });
      expect(r.out).toContain(says);
    }
  }, 120_000);

  // Last in this file: it leaves a request in the relay's history whose published verdict is forged.
  test('a relay whose published verdict is not the one its transcript yields fails here too (exit 1)', async () => {
    const requestId = await answered('A green frog');
    const url = `${t.relay.url}/v1/verify/${requestId}`;
    const honest = (await (await fetch(url)).json()) as {
      verdict: Verdict;
      verdictDigest: string;
      transcriptRoot: string;
    };
    if (!honest.verdict.winner) throw new Error('no winner to forge');
    // The relay, coordinator of the request, lies: it publishes another verdict (another winner's
    // output), signed with its own key, over the same transcript (its history is rewritten to take it).
    await t.relay.store.db.delete(verdicts).where(eq(verdicts.requestId, requestId));
    await t.relay.store.db
      .update(requests)
      .set({ status: 'sealed' })
      .where(eq(requests.requestId, requestId));
    const forged: Verdict = {
      ...honest.verdict,
      winner: { ...honest.verdict.winner, output: 'The end.', outputDigest: outputDigest('The end.') },
    };
    const packet = await signPacket(t.relayKey, 'verdict', {
      requestId,
      verdict: forged,
      verdictDigest: verdictDigest(forged),
      transcriptRoot: honest.transcriptRoot,
      createdAt: Date.now(),
    });
    expect(await t.relay.store.recordVerdict({ id: packetId(packet), packet }, Date.now())).toBe(true);
    const answer = await fetch(url);
    expect(answer.status).toBe(422);
    expect(await answer.json()).toMatchObject({
      ok: false,
      error: { code: 'VERDICT_MISMATCH' },
      verdictDigest: verdictDigest(forged),
      transcriptRoot: honest.transcriptRoot,
    });
    const r = await verify([url]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`request ${requestId}: the transcript holds`);
    expect(r.out).toContain(
      `the source's verdict digest does NOT match: given ${verdictDigest(forged)}, derived ${honest.verdictDigest}`,
    );
  }, 120_000);
});
