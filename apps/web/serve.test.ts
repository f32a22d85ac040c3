import { describe, expect, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { parseServeArgs, startWebServer } from './serve.ts';

const WS = '/ip4/127.0.0.1/tcp/9000/ws/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';

describe('npm run web: the command line', () => {
  test('a usable command line', () => {
    expect(parseServeArgs(['--port', '0', '--bootstrap', `${WS}, ${WS}`])).toMatchObject({
      help: false,
      options: { port: 0, bootstrap: [WS, WS], host: '127.0.0.1', modelFile: 'stories260K.gguf' },
    });
    expect(parseServeArgs(['--help'])).toEqual({ help: true });
    // The relays whose requests the tab serves, into its node's config.
    expect(parseServeArgs(['--coordinators', 'AB'.repeat(32)])).toMatchObject({
      options: { config: { coordinators: ['ab'.repeat(32)] } },
    });
    // A public relay, with --dial any: the tab's transport may dial it.
    const wss = '/dns4/relay.example/tcp/443/wss/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';
    expect(parseServeArgs(['--bootstrap', wss, '--dial', 'any'])).toMatchObject({
      options: { bootstrap: [wss], config: { dialPolicy: 'any' } },
    });
    const local = parseServeArgs(['--bootstrap', WS]);
    expect('options' in local && local.options.config).toBeUndefined();
  });

  test.each([
    [['--bogus'], "Unknown option '--bogus'"],
    [['--port', 'http'], '--port must be a port number'],
    [['--port', '70000'], '--port must be a port number'],
    // A browser cannot dial TCP, and an address without its peer id cannot be dialled at all.
    [
      ['--bootstrap', '/ip4/127.0.0.1/tcp/9000/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'],
      'WebSocket multiaddrs',
    ],
    [['--bootstrap', '/ip4/127.0.0.1/tcp/9000/ws'], 'WebSocket multiaddrs'],
    [['--bootstrap', 'localhost:9000'], 'WebSocket multiaddrs'],
    [['--coordinators', 'the-relay'], '--coordinators: node ids are 64 hex digits'],
    // A relay on another machine is dialled only with --dial any: the tab would wait for peers forever.
    [
      [
        '--bootstrap',
        '/dns4/relay.example/tcp/443/wss/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA',
      ],
      'is not a loopback IP address (127.0.0.0/8, ::1), and the tab dials no other unless --dial any is given',
    ],
    [['--dial', 'all'], '--dial must be loopback or any'],
    // Said at the start, not at the first request the page proxies.
    [['--relay', 'notaurl'], "--relay must be the relay's http(s) URL"],
    [['--relay', 'ftp://127.0.0.1:8787'], "--relay must be the relay's http(s) URL"],
    // The last of two would win unseen.
    [['--port', '1', '--port', '2'], '--port is given twice'],
  ])('%p is refused: %s', (args, message) => {
    const r = parseServeArgs(args);
    expect('error' in r && r.error).toContain(message);
  });
});

describe('npm run web: a start that fails', () => {
  test('a port already taken is an error, and leaves no bundle folder behind', async () => {
    const modelsDir = resolve(import.meta.dir, '../../../shared/models');
    const first = await startWebServer({ port: 0, modelsDir });
    const port = Number(new URL(first.url).port);
    const bundles = () => readdirSync(tmpdir()).filter((n) => n.startsWith('synod-web-')).length;
    const before = bundles();
    try {
      await expect(startWebServer({ port, modelsDir })).rejects.toThrow();
      expect(bundles()).toBe(before);
      // The command says which port, with a code and what to do.
      const cli = Bun.spawn(
        [
          process.execPath,
          resolve(import.meta.dir, 'serve.ts'),
          '--port',
          String(port),
          '--models-dir',
          modelsDir,
        ],
        { stdout: 'pipe', stderr: 'pipe' },
      );
      expect(await cli.exited).toBe(1);
      const err = await new Response(cli.stderr).text();
      expect(err).toContain(
        `synod web: EADDRINUSE: port ${port} on 127.0.0.1 is in use; give another with --port`,
      );
    } finally {
      await first.stop();
    }
  }, 120_000);
});

describe('npm run web: the relay proxy', () => {
  test('forwards what the relay needs to read a body as it was sent (Content-Encoding included)', async () => {
    const modelsDir = resolve(import.meta.dir, '../../../shared/models');
    const seen: Record<string, string | null>[] = [];
    const relay = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req) => {
        seen.push({
          encoding: req.headers.get('content-encoding'),
          key: req.headers.get('idempotency-key'),
        });
        return Response.json({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } }, { status: 415 });
      },
    });
    const web = await startWebServer({ port: 0, modelsDir, relayUrl: `http://127.0.0.1:${relay.port}` });
    try {
      const r = await fetch(`${web.url}/relay/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'idempotency-key': 'k' },
        body: Bun.gzipSync(new TextEncoder().encode('{"prompt":"x"}')),
      });
      expect(r.status).toBe(415);
      expect(seen).toEqual([{ encoding: 'gzip', key: 'k' }]);
    } finally {
      await web.stop();
      relay.stop(true);
    }
  }, 120_000);

  test("a relay that does not answer is 502 RELAY_UNREACHABLE, without the relay's address (the log has it)", async () => {
    const modelsDir = resolve(import.meta.dir, '../../../shared/models');
    const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('no') });
    const port = closed.port;
    const relayUrl = `http://operator:RELAYSECRET@127.0.0.1:${port}/private-relay`;
    closed.stop(true);
    const lines: string[] = [];
    const web = await startWebServer({ port: 0, modelsDir, relayUrl, log: (l) => lines.push(l) });
    try {
      const r = await fetch(`${web.url}/relay/v1/nodes`);
      expect(r.status).toBe(502);
      const body = await r.text();
      expect(JSON.parse(body)).toMatchObject({ error: { code: 'RELAY_UNREACHABLE' } });
      for (const internal of ['RELAYSECRET', 'private-relay', String(port), '127.0.0.1']) {
        expect(body).not.toContain(internal);
      }
      // The operator's log says which relay did not answer, and why (its credentials left out).
      const logged = lines.join('\n');
      expect(logged).toContain(`127.0.0.1:${port}/private-relay`);
      expect(logged).not.toContain('RELAYSECRET');
    } finally {
      await web.stop();
    }
  }, 120_000);
});
