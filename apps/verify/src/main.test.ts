/**
 * `synod-verify` as an auditor runs it: over the protocol's golden transcripts (shared/test-vectors),
 * over forged ones, from standard input, and from a relay's URL, including a relay that lies.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startTestNetwork, type TestNetwork } from '../../../edge/src/test-helpers.ts';
import { type Ran, runCommand } from '../../../edge/src/test-servers.ts';

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

  test('an input that is not a transcript is exit code 2', async () => {
    const r = await verify([file('not.json', { ok: false })]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('no transcript here');
  });
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
    const r = await verify([url]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`request ${requestId}: the transcript holds, verdict accepted`);
    expect(r.out).toContain(`verdict digest   ${view.verdict?.verdictDigest}`);
    expect(r.out).toContain("the source's verdict digest matches");

    // A relay that lies about the verdict digest of a genuine transcript is caught.
    const honest = (await (await fetch(url)).json()) as Record<string, unknown>;
    const liar = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: () => Response.json({ ...honest, verdictDigest: 'e'.repeat(64) }),
    });
    try {
      const lied = await verify([`http://127.0.0.1:${liar.port}/v1/verify/${requestId}`]);
      expect(lied.code).toBe(1);
      expect(lied.out).toContain("the source's verdict digest does NOT match");
    } finally {
      liar.stop(true);
    }
  }, 120_000);

  test('a URL with no transcript behind it is exit code 2', async () => {
    const r = await verify([`${t.relay.url}/v1/verify/${'0'.repeat(64)}`]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('answered 404 without a transcript');
  });
});
