/**
 * The contributor app's states after real failures, in headless Chromium and driven through its UI
 * (nothing of the app or the browser node stubbed):
 *
 * - a model that fails to load (the served GGUF is corrupt: its hash is not the one the config names)
 *   says why and that ticking Serve again retries, and leaves the Serve box unticked and usable, as a
 *   user's click left it focused; ticking it again, with the file whole again, serves;
 * - a relay that stops answering (it hangs, or its port is closed) blanks the standing figures it had
 *   shown, and the panel says why; when it answers again, they are back.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NodeKey } from '@synod/shared';
import type { Page } from 'playwright-core';
import type {} from '../../browser-node/src/browser/main.ts';
import { MemoryNetwork } from '../../browser-node/src/p2p/memory.ts';
import { type RunningRelay, startRelay } from '../../edge/src/runtime/bun.ts';
import { TEST_EMBEDDER } from '../../edge/src/store/test-admissions.ts';
import { type Chrome, launchChromium } from '../../tests/support/chromium.ts';
import { startWebServer, type WebServer } from './serve.ts';

const MODEL = 'stories260K.gguf';
const FIGURES = ['standing-commits', 'standing-agreement', 'standing-faults', 'standing-seen'];

describe('the contributor web app after a failure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-web-app-'));
  const modelPath = join(dir, 'models', MODEL);
  const whole = readFileSync(
    join(process.env['SYNOD_MODELS_DIR'] ?? resolve(import.meta.dir, '../../../shared/models'), MODEL),
  );
  let relay: RunningRelay;
  /** The way to the relay: it passes asks on, holds them unanswered (`hang`), or is closed. */
  let gate: { server: ReturnType<typeof Bun.serve>; hang: boolean };
  let web: WebServer | undefined;
  let chrome: Chrome | undefined;
  let page: Page;
  const modelFetches: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(join(dir, 'models'));
    writeFileSync(modelPath, whole);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(7));
    relay = await startRelay({
      dbUrl: ':memory:',
      key,
      transports: [new MemoryNetwork().join(key.nodeId)],
      embedders: [TEST_EMBEDDER],
      configuredModels: ['stories260K'],
    });
    const to = relay.url;
    gate = {
      hang: false,
      server: Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        idleTimeout: 0,
        fetch: (req) =>
          gate.hang
            ? new Promise<Response>((answer) =>
                req.signal.addEventListener('abort', () => answer(new Response(null, { status: 504 }))),
              )
            : fetch(`${to}${new URL(req.url).pathname}${new URL(req.url).search}`),
      }),
    };
    web = await startWebServer({
      modelsDir: join(dir, 'models'),
      relayUrl: `http://127.0.0.1:${gate.server.port}`,
      // A heartbeat a second, and the standing asked on each (not every 5 s), given 1 s to answer.
      config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-web-app-test-${Date.now()}` },
      standing: { onChangeMs: 500, timeoutMs: 1_000 },
      log: (line) => {
        if (line === `GET /models/${MODEL}`) modelFetches.push(line);
      },
    });
    chrome = await launchChromium();
    page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(web.url);
    await page.fill('#passphrase', 'a passphrase only this test knows');
    await page.fill('#passphrase-again', 'a passphrase only this test knows');
    await page.click('#unlock');
    await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
  }, 120_000);

  afterAll(async () => {
    await page?.evaluate(() => window.synod?.stop()).catch(() => {});
    await chrome?.close();
    await web?.stop();
    gate?.server.stop(true);
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test('the relay stops answering, then is gone: the figures are blanked each time, and the panel says why', async () => {
    const nodeId = (await page.textContent('#node-id')) ?? '';
    expect(nodeId).toMatch(/^[0-9a-f]{64}$/);
    // What the relay's history holds of this node (this relay's network is not the tab's).
    const at = Date.now();
    await relay.client.execute({
      sql: `INSERT INTO nodes (node_id, role, software, last_heartbeat, last_heartbeat_id, models, embedders,
              tokens_per_second, embeddings_per_second, first_seen, last_seen)
            VALUES (?, 'node', 'synod-web/test', '{}', ?, '[]', '[]', 0, 0, ?, ?)`,
      args: [nodeId, 'f'.repeat(64), at, at],
    });
    await relay.client.execute({
      sql: `INSERT INTO reputation (node_id, agreements, disagreements, withheld, invalid, commits,
              latency_samples, score, updated_at) VALUES (?, 4, 1, 0, 0, 5, 0, 0.725, ?)`,
      args: [nodeId, at],
    });
    const shown = async () => {
      await page.waitForSelector('#standing-score:text-is("0.725")', { timeout: 30_000 });
      expect(await page.textContent('#standing-commits')).toBe('5');
      expect(await page.textContent('#standing-agreement')).toBe('4 / 1');
      expect(await page.textContent('#standing-faults')).toBe('0 / 0');
      // Recorded within 30 s: said to be current, not read as a fault.
      expect(await page.textContent('#standing-seen')).toMatch(
        / ago \(the relay records a heartbeat every 30 s\)$/,
      );
    };
    const blanked = async (why: string) => {
      await page.waitForSelector(`#standing-score:has-text("the relay could not be asked (${why}")`, {
        timeout: 30_000,
      });
      for (const id of FIGURES) expect(await page.textContent(`#${id}`)).toBe('—');
    };
    await shown();

    // The relay takes the connection and never answers (hung, overloaded): no figures after 1 s.
    gate.hang = true;
    await blanked('no answer within 1 s');
    // It answers again: the figures are back.
    gate.hang = false;
    await shown();
    // The page cannot reach the app's server at all: the browser's "Failed to fetch", said in words.
    await page.route('**/v1/nodes*', (route) => void route.abort('connectionrefused'));
    await blanked('it did not answer: it is stopped, restarting, or out of reach');
    await page.unroute('**/v1/nodes*');
    await shown();
    // It is gone (its port closed): the app's proxy answers 502 RELAY_UNREACHABLE.
    gate.server.stop(true);
    await blanked('HTTP 502');
    expect(pageErrors).toEqual([]);
  }, 60_000);

  test('a model that fails to load leaves the Serve box unticked, and ticking it again serves', async () => {
    // The file the config's hash names, with one byte changed: fetched whole, refused on its hash.
    const corrupt = Buffer.from(whole);
    const middle = corrupt.length >> 1;
    corrupt.writeUInt8(corrupt.readUInt8(middle) ^ 0xff, middle);
    writeFileSync(modelPath, corrupt);

    await page.check('#serve');
    await page.waitForSelector('#engine-phase:has-text("MODEL_HASH_MISMATCH")', { timeout: 60_000 });
    // What failed, and what to do about it.
    expect(await page.textContent('#engine-phase')).toEndWith('; tick Serve models to try again');
    // Its bar shows no progress (the bytes were all downloaded, and refused), marked as failed.
    expect(
      await page.evaluate(() => (document.getElementById('engine-progress') as HTMLProgressElement).value),
    ).toBe(0);
    expect(await page.getAttribute('#engine-progress', 'class')).toBe('failed');
    expect(await page.textContent('#engine-ref')).toBe(
      'stories260K, from /models/stories260K.gguf (this site)',
    );
    expect(modelFetches).toHaveLength(1);
    // The user's click left the box focused; it shows what is true all the same: not serving.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('serve');
    expect(await page.isChecked('#serve')).toBe(false);
    expect(await page.isEnabled('#serve')).toBe(true);
    expect(await page.textContent('#phase')).toStartWith('running as follower');
    expect(await page.textContent('#embedder-phase')).toBe('idle');
    expect(await page.evaluate(() => window.synod?.status().serving)).toBe(false);

    // Tried again with the file whole: loaded, measured, serving.
    writeFileSync(modelPath, whole);
    await page.check('#serve');
    await page.waitForSelector('#phase:has-text("running as node")', { timeout: 120_000 });
    expect(modelFetches).toHaveLength(2);
    expect(await page.isChecked('#serve')).toBe(true);
    expect(await page.textContent('#engine-phase')).toBe('ready');
    expect(await page.textContent('#embedder-phase')).toBe('ready');
    expect(await page.evaluate(() => window.synod?.status().serving)).toBe(true);
    expect(pageErrors).toEqual([]);
  }, 150_000);
});
