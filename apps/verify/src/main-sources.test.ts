/**
 * `synod-verify SOURCE` against sources an auditor does not control: a named pipe or a device instead of
 * a file, a relay that redirects elsewhere or fails, and `--json` when the source cannot be checked.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Ran, runCommand } from '../../../edge/src/test-servers.ts';
import { MAX_SOURCE_BYTES } from './fetch-text.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const dir = mkdtempSync(join(tmpdir(), 'synod-verify-sources-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const golden = (
  JSON.parse(readFileSync(VECTORS, 'utf8')) as {
    scenarios: { transcript: { requestId: string }; verdictDigest: string }[];
  }
).scenarios[0] as { transcript: { requestId: string }; verdictDigest: string };
const body = JSON.stringify({ transcript: golden.transcript });
const verifyPath = `/v1/verify/${golden.transcript.requestId}`;

const verify = (args: string[]): Promise<Ran> => runCommand([process.execPath, MAIN, ...args]);

/** A server on 127.0.0.1 answering every request with `answer`. */
function serve(answer: (url: URL) => Response) {
  return Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (req) => answer(new URL(req.url)) });
}

describe('a SOURCE that is not a regular file is bounded all the same', () => {
  test('a named pipe sending more than any transcript is cut at the bound (exit 2)', async () => {
    const fifo = join(dir, 'pipe');
    expect(Bun.spawnSync(['mkfifo', fifo]).exitCode).toBe(0);
    // The writer sends one byte past the bound; a reader that stops early makes it fail, which is fine.
    const writer = Bun.spawn(['sh', '-c', `head -c ${MAX_SOURCE_BYTES + 1} /dev/zero > '${fifo}'`], {
      stderr: 'ignore',
    });
    try {
      const r = await verify([fifo]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`the file ${fifo} is larger than ${MAX_SOURCE_BYTES} bytes`);
    } finally {
      writer.kill();
      await writer.exited;
    }
  }, 60_000);

  test('a named pipe holding a transcript is verified (exit 0)', async () => {
    const fifo = join(dir, 'pipe-ok');
    expect(Bun.spawnSync(['mkfifo', fifo]).exitCode).toBe(0);
    const src = join(dir, 'golden.json');
    writeFileSync(src, body);
    const writer = Bun.spawn(['sh', '-c', `cat '${src}' > '${fifo}'`]);
    const r = await verify([fifo, '--expect-digest', golden.verdictDigest]);
    await writer.exited;
    expect(r.code).toBe(0);
    expect(r.out).toContain('--expect-digest matches');
  });
});

describe('a relay URL', () => {
  test('a redirect to another origin is not followed: exit 2, naming where it pointed', async () => {
    const elsewhere = serve(() => new Response(body));
    const target = `http://127.0.0.1:${elsewhere.port}${verifyPath}`;
    const redirecting = serve(() => Response.redirect(target, 302));
    try {
      const r = await verify([`http://127.0.0.1:${redirecting.port}${verifyPath}`]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`redirected to ${target}, another origin: not followed`);
      expect(r.out).toBe('');
    } finally {
      redirecting.stop(true);
      elsewhere.stop(true);
    }
  });

  test('a redirect within the same origin is followed; the request asked for is still the first URL', async () => {
    const relay = serve((u) =>
      u.pathname === verifyPath
        ? new Response(body)
        : Response.redirect(`http://127.0.0.1:${relay.port}${verifyPath}`, 301),
    );
    try {
      const r = await verify([`http://127.0.0.1:${relay.port}/v1/verify/${golden.transcript.requestId}/`]);
      expect(r.code).toBe(0);
      const loop = serve((u) => Response.redirect(`http://127.0.0.1:${loop.port}${u.pathname}x`, 302));
      try {
        const looped = await verify([`http://127.0.0.1:${loop.port}/a`]);
        expect(looped.code).toBe(2);
        expect(looped.err).toContain('redirected more than 5 times');
      } finally {
        loop.stop(true);
      }
    } finally {
      relay.stop(true);
    }
  });

  test('a relay failing (500, HTML) is exit 2 naming its status, even with a transcript in its body', async () => {
    const failing = serve((u) =>
      u.pathname === '/html'
        ? new Response('<html>"transcript" unavailable</html>', { status: 500 })
        : new Response(body, { status: 503 }),
    );
    try {
      const html = await verify([`http://127.0.0.1:${failing.port}/html`]);
      expect(html.code).toBe(2);
      expect(html.err).toContain(`http://127.0.0.1:${failing.port}/html answered 500: <html>`);
      const withTranscript = await verify([`http://127.0.0.1:${failing.port}${verifyPath}`]);
      expect(withTranscript.code).toBe(2);
      expect(withTranscript.err).toContain('answered 503');
    } finally {
      failing.stop(true);
    }
  });

  test('a 200 that is not JSON names the URL it came from', async () => {
    const html = serve(() => new Response('<html>{"packets": []}</html>'));
    try {
      const url = `http://127.0.0.1:${html.port}${verifyPath}`;
      const r = await verify([url]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`the transcript at ${url} is not JSON`);
    } finally {
      html.stop(true);
    }
  });
});

describe('--json when the source cannot be checked', () => {
  test('exit 2 prints one JSON value with a stable code, the message on standard error as well', async () => {
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '');
    const r = await verify([empty, '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out)).toEqual({
      ok: false,
      error: { code: 'VERIFY_INPUT_INVALID', message: `the file ${empty} is empty` },
    });
    expect(r.err).toContain(`the file ${empty} is empty`);
    const missing = await verify([join(dir, 'missing.json'), '--json']);
    expect(missing.code).toBe(2);
    expect((JSON.parse(missing.out) as { error: { code: string } }).error.code).toBe('VERIFY_INPUT_INVALID');
  });

  test('a URL that is not one is exit 2 with VERIFY_INPUT_INVALID, as a source, and as a relay to audit', async () => {
    for (const args of [
      ['http://', '--json'],
      ['--relay', 'http://a b', '--json'],
    ]) {
      const r = await verify(args);
      expect(r.code).toBe(2);
      expect((JSON.parse(r.out) as { error: { code: string } }).error.code).toBe('VERIFY_INPUT_INVALID');
    }
  });
});
