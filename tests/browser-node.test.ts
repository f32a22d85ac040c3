/**
 * A browser node and a headless node in one quorum, over Waku relay.
 *
 *   Bun test process                                   headless Chromium (playwright-core)
 *   ─────────────────                                  ───────────────────────────────────
 *   coordinator  SynodNode role relay ──TCP──┐         the contributor app (apps/web) from a Bun.serve
 *   headless     SynodNode role node  (hub) ◀┴──WS──── browser node: SynodNode role node, Waku relay
 *                node-llama-cpp + USE Lite               dialing WebSocket, wllama + USE Lite in a Web
 *                                                        Worker, IndexedDB machine store
 *
 * The coordinator submits a greedy request with quorum 2 (embedding model: USE Lite); both nodes commit
 * and reveal; the verdict is accepted with both in the accepted set, and both runtimes' packed
 * embeddings are byte-identical. Everything is served from 127.0.0.1; the page may not reach any other
 * origin (checked). Also: the IndexedDB machine store, round-tripped inside Chromium.
 *
 * Engine parity: wllama in Chromium and node-llama-cpp in Bun must give byte-identical greedy output for
 * any request, or honest browser nodes disagree with honest headless ones. Checked on the token ids
 * each feeds the model (wllama's tokenizer observed through its embeddings of text versus ids), on
 * varied prompts and a chat request (text, token count, finish reason), on the context limits, and
 * through the browser worker and the headless queue (output and embedding bits), and a chat request
 * through the quorum.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AnyPacket,
  deriveRequestId,
  NodeKey,
  type RequestBody,
  resolveFrame,
  type VerdictEffect,
} from '@synod/shared';
import type { Page } from 'playwright-core';
import { startWebServer, type WebServer } from '../apps/web/serve.ts';
import type { BrowserNodeStatus } from '../browser-node/src/browser/browser-node.ts';
import { buildBrowserBundle } from '../browser-node/src/browser/build.ts';
import type {} from '../browser-node/src/browser/main.ts';
import type { GenerateRequest, GenerateResult } from '../browser-node/src/inference/engine.ts';
import { LlamaCppEngine } from '../browser-node/src/inference/llama-cpp.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from '../browser-node/src/inference/test-models.ts';
import { SynodNode } from '../browser-node/src/node/synod-node.ts';
import { loadTestServing, type TestServing } from '../browser-node/src/node/test-helpers.ts';
import type { WakuRelayTransport } from '../browser-node/src/p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../browser-node/src/p2p/waku-relay-headless.ts';
import { type Chrome, launchChromium, until } from './support/chromium.ts';

/** A prompt of `n` words `a`. */
const words = (n: number) => Array(n).fill('a').join(' ');

const LONG = 180_000;

/**
 * Requests on which the two GGUF engines must agree byte for byte: leading, trailing and doubled spaces,
 * punctuation, a newline, unicode, special-token text, an empty prompt, one token, a long output, and
 * a chat request with a system message.
 */
const greedy = (maxTokens: number) => ({ temperature: 0, maxTokens });
const PARITY_REQUESTS: GenerateRequest[] = [
  { prompt: 'Once upon a time', params: greedy(24) },
  { prompt: 'Hello', params: greedy(24) },
  { prompt: ' Hello', params: greedy(24) },
  { prompt: 'Hello ', params: greedy(24) },
  { prompt: '  Once upon a time', params: greedy(24) },
  { prompt: 'The cat sat.', params: greedy(24) },
  { prompt: 'Lily said: "Look!" Tom was sad?!', params: greedy(24) },
  { prompt: 'Once upon a time\nthere was', params: greedy(24) },
  { prompt: '\n', params: greedy(16) },
  { prompt: 'héllo ☃ 日本 — café', params: greedy(24) },
  { prompt: '<s>Hi</s> there', params: greedy(24) },
  { prompt: 'Once upon a time 25', params: greedy(24) },
  { prompt: '', params: greedy(16) },
  { prompt: 'Hello', params: greedy(1) },
  { prompt: 'Once upon a time', params: greedy(300) },
  {
    messages: [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: 'Tell me about a dog.' },
    ],
    params: greedy(32),
  },
  {
    messages: [
      { role: 'system', content: ' Be kind. ' },
      { role: 'user', content: 'Hi!' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'A story?' },
    ],
    params: greedy(24),
  },
];

/** What must be identical across engines: the text, the token count and the finish reason. */
function comparable(r: GenerateResult | { error: string }) {
  // The prompt's token count too: nodes reveal it as usage, and decline by it, in a tab and headless alike.
  return 'error' in r
    ? r
    : { text: r.text, tokens: r.tokens, promptTokens: r.promptTokens, finishReason: r.finishReason };
}

/** Fail the test on any request that leaves 127.0.0.1 (blob: URLs are wllama's in-page worker). */
function guardOffline(page: Page, origin: string, offsite: string[]): void {
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:')) offsite.push(url);
  });
}

describe('a browser node and a headless node in one quorum', () => {
  let serving: TestServing;
  let hubWaku: WakuRelayTransport;
  let coordWaku: WakuRelayTransport;
  let headless: SynodNode;
  let coordinator: SynodNode;
  let web: WebServer;
  let chrome: Chrome;
  let page: Page;
  const offsite: string[] = [];
  const pageErrors: string[] = [];
  const verdicts = new Map<string, VerdictEffect>();
  const reveals = new Map<string, Map<string, AnyPacket & { type: 'reveal' }>>();
  let browserNodeId = '';
  const timings: Record<string, number> = {};

  beforeAll(
    async () => {
      serving = await loadTestServing();
      hubWaku = await createHeadlessWakuRelay();
      const tcp = hubWaku.addresses().find((a) => !a.includes('/ws'));
      const ws = hubWaku.addresses().find((a) => a.includes('/ws'));
      if (tcp === undefined || ws === undefined) throw new Error(`hub addresses: ${hubWaku.addresses()}`);
      coordWaku = await createHeadlessWakuRelay({ bootstrap: [tcp] });

      const headlessKey = await NodeKey.fromSeed(new Uint8Array(32).fill(41));
      headless = new SynodNode({
        key: headlessKey,
        role: 'node',
        transports: [hubWaku],
        serving,
        heartbeat: {
          intervalMs: 1_000,
          software: 'synod-test-headless',
          addresses: hubWaku.addresses(),
          tokensPerSecond: 200,
          embeddingsPerSecond: 20,
          engine: 'node-llama-cpp',
        },
      });
      const coordKey = await NodeKey.fromSeed(new Uint8Array(32).fill(42));
      coordinator = new SynodNode({
        key: coordKey,
        role: 'relay',
        transports: [coordWaku],
        heartbeat: {
          intervalMs: 1_000,
          software: 'synod-test-coordinator',
          addresses: [],
          tokensPerSecond: 0,
          embeddingsPerSecond: 0,
          engine: 'none',
        },
        onVerdict: (id, v) => {
          if (v.check === 'computed') verdicts.set(id, v);
        },
        onPacket: ({ packet }) => {
          if (packet.type !== 'reveal') return;
          const byNode = reveals.get(packet.body.requestId) ?? new Map();
          byNode.set(packet.from, packet as AnyPacket & { type: 'reveal' });
          reveals.set(packet.body.requestId, byNode);
        },
      });
      await headless.start();
      await coordinator.start();

      web = await startWebServer({
        bootstrap: [ws],
        config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-test-${Date.now()}` },
      });
      chrome = await launchChromium();
      page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
      guardOffline(page, web.url, offsite);
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(web.url);
      await page.waitForFunction(() => window.synod !== undefined, null, { timeout: 60_000 });
      await page.evaluate(() => window.synod?.unlock('correct horse battery staple'));
      let t = Date.now();
      await page.evaluate(() => window.synod?.setServing(true));
      timings['browserModelsLoadedMs'] = Date.now() - t;
      const status = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
      browserNodeId = status.nodeId ?? '';
      t = Date.now();
      // Both directions work: the coordinator hears the browser's heartbeats, the browser the coordinator's.
      await until('the coordinator to hear both nodes', () => {
        const ids = coordinator.knownNodes().map((n) => n.nodeId);
        return ids.includes(browserNodeId) && ids.includes(headless.nodeId);
      });
      await until('the browser to hear the coordinator', async () => {
        const s = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
        return s.knownNodes.some((n) => n.nodeId === coordinator.nodeId);
      });
      timings['meshMs'] = Date.now() - t;
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await page?.evaluate(() => window.synod?.stop()).catch(() => {});
      await chrome?.close();
      await web?.stop();
      await coordinator?.close();
      await headless?.close();
      await coordWaku?.close();
      await hubWaku?.close();
      await serving?.close();
      console.log('[browser-node test] timings', JSON.stringify(timings));
    },
    { timeout: 60_000 },
  );

  test(
    'both nodes commit and reveal; the verdict accepts both; embeddings are byte-identical',
    async () => {
      const status = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
      expect(status.phase).toBe('running');
      expect(status.role).toBe('node');
      expect(status.engineId).toBe('wllama@3.8.1');
      expect(status.engine.ref?.id).toBe('stories260K');
      expect(status.embedder.ref).toEqual(serving.embedder);
      expect(status.peers.length).toBeGreaterThan(0);
      console.log(
        '[browser-node test] browser load',
        JSON.stringify({
          engineMs: Math.round(status.engine.ms ?? 0),
          embedderMs: Math.round(status.embedder.ms ?? 0),
          capability: status.capability,
        }),
      );

      const now = Date.now();
      const fields = {
        nonce: '5b'.repeat(16),
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 48 },
        frame: resolveFrame({
          embeddingModel: serving.embedder,
          quorum: 2,
          maxTimeMs: 60_000,
          revealWindowMs: 30_000,
        }),
        origin: { kind: 'http' as const },
        createdAt: now,
      };
      const body = { ...fields, requestId: deriveRequestId(fields) } as RequestBody;
      const started = Date.now();
      await coordinator.submit(body);
      const v = await until('the verdict', () => verdicts.get(body.requestId), 120_000);
      timings['requestToVerdictMs'] = Date.now() - started;

      expect(v.verdict.status).toBe('accepted');
      expect(v.verdict.sealSize).toBe(2);
      expect(v.verdict.accepted.map((m) => m.nodeId).sort()).toEqual([browserNodeId, headless.nodeId].sort());
      expect(v.verdict.rejected).toEqual([]);

      const got = reveals.get(body.requestId);
      const fromBrowser = got?.get(browserNodeId);
      const fromHeadless = got?.get(headless.nodeId);
      expect(fromBrowser).toBeDefined();
      expect(fromHeadless).toBeDefined();
      // Greedy outputs agree across wllama (WASM) and node-llama-cpp (native) for stories260K…
      expect(fromBrowser?.body.output).toBe(fromHeadless?.body.output as string);
      expect(fromBrowser?.body.output.length).toBeGreaterThan(0);
      // …and USE Lite's packed sign bits agree across the tfjs WASM backend in Chromium and in Bun.
      expect(fromBrowser?.body.bEmbedding).toBe(fromHeadless?.body.bEmbedding as string);
      expect(fromBrowser?.body.model).toEqual(fromHeadless?.body.model as { id: string; fileHash: string });

      // The browser recomputed the same verdict and records what it served.
      const after = await until('the browser to record the verdict', async () => {
        const s = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
        return s.verdicts.some((r) => r.requestId === body.requestId) ? s : null;
      });
      const record = after.verdicts.find((r) => r.requestId === body.requestId);
      expect(record?.status).toBe('accepted');
      expect(record?.agreedHere).toBe(true);
      expect(after.served).toBeGreaterThanOrEqual(1);
      expect(after.reveals.find((r) => r.requestId === body.requestId)?.bEmbedding).toBe(
        fromHeadless?.body.bEmbedding as string,
      );

      expect(offsite).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'the browser worker (wllama + USE Lite) and the headless queue (node-llama-cpp + USE Lite) agree: text and embedding bits',
    async () => {
      const prompts = ['Hello', ' Hello', 'The cat sat.', 'Once upon a time\nthere was', 'héllo ☃ 日本'];
      for (const [i, prompt] of prompts.entries()) {
        const browser = (await page.evaluate(([p]) => window.synod?.generate(p as string, 24), [prompt])) as {
          text: string;
          finishReason: string;
          bEmbedding: string;
        };
        const headless = await serving.queue.submit({
          requestId: `parity-${i}`,
          deadline: Date.now() + 60_000,
          request: { prompt, params: { temperature: 0, maxTokens: 24 } },
          embed: true,
        });
        expect({ prompt, text: browser.text, finishReason: browser.finishReason }).toEqual({
          prompt,
          text: headless.text,
          finishReason: headless.finishReason,
        });
        // The embedding depends on the output text only, so it agrees too.
        expect(browser.bEmbedding).toBe(Buffer.from(headless.bEmbedding ?? new Uint8Array()).toString('hex'));
      }
    },
    LONG,
  );

  test(
    'a chat request (system and user messages) is accepted with both nodes in the accepted set',
    async () => {
      const fields = {
        nonce: '5c'.repeat(16),
        messages: [
          { role: 'system' as const, content: 'You tell short stories.' },
          { role: 'user' as const, content: 'Tell me about a dog.' },
        ],
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 32 },
        frame: resolveFrame({
          embeddingModel: serving.embedder,
          quorum: 2,
          maxTimeMs: 60_000,
          revealWindowMs: 30_000,
        }),
        origin: { kind: 'http' as const },
        createdAt: Date.now(),
      };
      const body = { ...fields, requestId: deriveRequestId(fields) } as RequestBody;
      await coordinator.submit(body);
      const v = await until('the chat verdict', () => verdicts.get(body.requestId), 120_000);
      expect(v.verdict.status).toBe('accepted');
      expect(v.verdict.accepted.map((m) => m.nodeId).sort()).toEqual([browserNodeId, headless.nodeId].sort());
      const got = reveals.get(body.requestId);
      expect(got?.get(browserNodeId)?.body.output).toBe(got?.get(headless.nodeId)?.body.output as string);
      expect(got?.get(browserNodeId)?.body.bEmbedding).toBe(
        got?.get(headless.nodeId)?.body.bEmbedding as string,
      );
    },
    LONG,
  );

  test(
    'the page stays responsive while the worker generates',
    async () => {
      // A long generation runs in the worker; the page's event loop keeps ticking meanwhile.
      const ticks = await page.evaluate(async () => {
        let n = 0;
        const timer = setInterval(() => n++, 10);
        const gen = window.synod?.generate('Once upon a time', 400);
        await gen;
        clearInterval(timer);
        return n;
      });
      expect(ticks).toBeGreaterThan(0);
    },
    LONG,
  );
});

describe('engine parity: wllama in Chromium and node-llama-cpp in Bun, same ids in, same text out', () => {
  let server: ReturnType<typeof Bun.serve>;
  let chrome: Chrome;
  let page: Page;
  let outdir: string;
  const native = new LlamaCppEngine({ threads: 1 });
  const nativeSmall = new LlamaCppEngine({ threads: 1, contextSize: 256 });
  const modelSource = {
    id: 'stories260K',
    fileHash: STORIES_260K_SHA256,
    path: join(TEST_MODELS_DIR, 'stories260K.gguf'),
  };

  /** Run requests through a WllamaEngine in the page (`big`: default context, `small`: 256 tokens, `capped`). */
  async function browserGenerate(which: 'big' | 'small' | 'capped', requests: GenerateRequest[]) {
    return page.evaluate(
      async ([w, rs]) => {
        const engine = (
          window as unknown as Record<string, { generate(r: unknown): Promise<GenerateResult> }>
        )[`parity_${w}`];
        const out: (GenerateResult | { error: string })[] = [];
        for (const r of rs as GenerateRequest[]) {
          out.push(
            await engine!.generate(r).catch((e: { code?: string; details?: unknown }) => ({
              error: String(e.code ?? e),
              // A prompt too long says by how much: the decline's numbers, compared too.
              ...(e.code === 'PROMPT_TOO_LONG' ? { details: e.details } : {}),
            })),
          );
        }
        return out;
      },
      [which, requests] as const,
    );
  }

  async function nativeGenerate(engine: LlamaCppEngine, requests: GenerateRequest[]) {
    const out: (GenerateResult | { error: string })[] = [];
    for (const r of requests) {
      out.push(
        await engine.generate(r).catch((e: { code?: string; details?: unknown }) => ({
          error: String(e.code ?? e),
          ...(e.code === 'PROMPT_TOO_LONG' ? { details: e.details } : {}),
        })),
      );
    }
    return out;
  }

  beforeAll(
    async () => {
      await native.load(modelSource);
      await nativeSmall.load(modelSource);
      outdir = mkdtempSync(join(tmpdir(), 'synod-parity-'));
      const bundle = await buildBrowserBundle(outdir, {
        entries: [
          join(import.meta.dir, '../browser-node/src/inference/wllama.ts'),
          Bun.resolveSync('@wllama/wllama/esm/index.js', import.meta.dir),
        ],
        sourcemap: false,
      });
      const files: Record<string, string> = {
        '/wllama.js': bundle.files.get('wllama.js') as string,
        '/wllama-raw.js': bundle.files.get('index.js') as string,
        '/wllama.wasm': Bun.resolveSync('@wllama/wllama/esm/wasm/wllama.wasm', import.meta.dir),
        '/model.gguf': modelSource.path,
      };
      server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: (req) => {
          const path = files[new URL(req.url).pathname];
          if (path === undefined) {
            return new Response('<!doctype html><title>parity</title>', {
              headers: { 'content-type': 'text/html' },
            });
          }
          const type = path.endsWith('.js')
            ? 'text/javascript'
            : path.endsWith('.wasm')
              ? 'application/wasm'
              : 'application/octet-stream';
          return new Response(Bun.file(path), { headers: { 'content-type': type } });
        },
      });
      chrome = await launchChromium();
      page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
      const origin = `http://127.0.0.1:${server.port}`;
      await page.goto(`${origin}/`);
      await page.evaluate(
        async ([hash]) => {
          const { WllamaEngine } = (await import(
            '/wllama.js' as string
          )) as typeof import('../browser-node/src/inference/wllama.ts');
          const { Wllama } = (await import(
            '/wllama-raw.js' as string
          )) as typeof import('@wllama/wllama/esm/index.js');
          const source = { id: 'stories260K', fileHash: hash as string, url: '/model.gguf' };
          const w = window as unknown as Record<string, unknown>;
          const big = new WllamaEngine({ wasmUrl: '/wllama.wasm' });
          await big.load(source);
          const small = new WllamaEngine({ wasmUrl: '/wllama.wasm', contextSize: 256 });
          await small.load(source);
          // wllama 3 has no tokenize call. Its embeddings take text or token ids, and tokenize text with
          // the very function its completions use (llama.cpp server's tokenize_input_prompts, with
          // add_special and parse_special): equal embeddings of a text and of ids mean equal ids.
          const raw = new Wllama({ default: '/wllama.wasm', 'single-thread/wllama.wasm': '/wllama.wasm' });
          raw.setCompat(null);
          const bytes = await (await fetch('/model.gguf')).arrayBuffer();
          await raw.loadModel([new Blob([bytes])], {
            n_ctx: 2048,
            n_threads: 1,
            n_gpu_layers: 0,
            embeddings: true,
            pooling_type: 'mean',
          });
          w['parity_big'] = big;
          w['parity_small'] = small;
          w['parity_embed'] = async (input: string | number[]) =>
            Array.from((await raw.createEmbedding({ input })).data[0]?.embedding as number[]);
        },
        [STORIES_260K_SHA256],
      );
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await chrome?.close();
      server?.stop(true);
      if (outdir !== undefined) rmSync(outdir, { recursive: true, force: true });
      await native.unload();
      await nativeSmall.unload();
    },
    { timeout: 60_000 },
  );

  test(
    'prompt token ids: BOS, the dummy-prefix space and special tokens, the same in both engines',
    async () => {
      // node-llama-cpp, as llama_tokenize(text, add_special = true, parse_special = true) gives them.
      expect(native.promptTokens('Hello')).toEqual([1, 346, 306, 414]);
      expect(native.promptTokens(' Hello')).toEqual([1, 410, 346, 306, 414]);
      // wllama: its embedding of each text is its embedding of node-llama-cpp's ids for that text…
      const embed = (input: string | number[]) =>
        page.evaluate(
          ([i]) =>
            (window as unknown as Record<string, (x: unknown) => Promise<number[]>>)['parity_embed']?.(i),
          [input] as const,
        );
      const texts = ['Hello', ' Hello', 'Hello ', 'Once upon a time\nthere', '<s>Hi</s>', 'héllo ☃', ''];
      for (const text of texts) {
        const ids = native.promptTokens(text);
        expect({ text, embedding: await embed(text) }).toEqual({ text, embedding: await embed(ids) });
      }
      // …and the check tells ids apart: "Hello" without its dummy-prefix space (what node-llama-cpp's
      // LlamaCompletion used to feed the model) is another input.
      expect(await embed('Hello')).not.toEqual(await embed([1, 440, 411, 306, 414]));
    },
    LONG,
  );

  test(
    'greedy output is byte-identical, with the same token count and finish reason, on varied requests',
    async () => {
      const browser = await browserGenerate('big', PARITY_REQUESTS);
      const headless = await nativeGenerate(native, PARITY_REQUESTS);
      const label = (r: GenerateRequest) => JSON.stringify(r.prompt ?? r.messages);
      expect(browser.map((r, i) => [label(PARITY_REQUESTS[i] as GenerateRequest), comparable(r)])).toEqual(
        headless.map((r, i) => [label(PARITY_REQUESTS[i] as GenerateRequest), comparable(r)]),
      );
      // Sanity: every request produced text, and the first token's leading space is kept.
      for (const r of headless) expect('text' in r && r.text.length > 0).toBe(true);
      expect(comparable(headless[1] as GenerateResult)).toMatchObject({
        text: expect.stringMatching(/^ was a big/),
      });
    },
    LONG,
  );

  test(
    'context limits: a full context ends both at the same token (length); a prompt as long as the context fails in both',
    async () => {
      const requests: GenerateRequest[] = [
        { prompt: 'Once upon a time', params: greedy(400) },
        { prompt: words(253), params: greedy(100) },
        { prompt: words(254), params: greedy(100) },
        { prompt: words(255), params: greedy(100) },
        { prompt: words(300), params: greedy(100) },
      ];
      const browser = (await browserGenerate('small', requests)).map(comparable);
      const headless = (await nativeGenerate(nativeSmall, requests)).map(comparable);
      expect(browser).toEqual(headless);
      expect(headless.map((r) => ('error' in r ? r.error : [r.tokens, r.finishReason]))).toEqual([
        [251, 'length'],
        [2, 'length'],
        [1, 'length'],
        'PROMPT_TOO_LONG',
        'PROMPT_TOO_LONG',
      ]);
    },
    LONG,
  );

  test(
    'a context asked above the training context (2048 here) is capped to it in both engines',
    async () => {
      const capped = new LlamaCppEngine({ threads: 1, contextSize: 4096 });
      await capped.load(modelSource);
      try {
        await page.evaluate(
          async ([hash]) => {
            const { WllamaEngine } = (await import(
              '/wllama.js' as string
            )) as typeof import('../browser-node/src/inference/wllama.ts');
            const engine = new WllamaEngine({ wasmUrl: '/wllama.wasm', contextSize: 4096 });
            await engine.load({ id: 'stories260K', fileHash: hash as string, url: '/model.gguf' });
            (window as unknown as Record<string, unknown>)['parity_capped'] = engine;
          },
          [STORIES_260K_SHA256],
        );
        // 2047 prompt tokens leave room for one; 2048 do not.
        const requests: GenerateRequest[] = [
          { prompt: words(2046), params: greedy(10) },
          { prompt: words(2047), params: greedy(10) },
        ];
        const browser = (await browserGenerate('capped', requests)).map(comparable);
        const headless = (await nativeGenerate(capped, requests)).map(comparable);
        expect(browser).toEqual(headless);
        expect(headless.map((r) => ('error' in r ? r.error : [r.tokens, r.finishReason]))).toEqual([
          [1, 'length'],
          'PROMPT_TOO_LONG',
        ]);
      } finally {
        await capped.unload();
        await page.evaluate(() =>
          (window as unknown as Record<string, { unload(): Promise<void> }>)['parity_capped']?.unload(),
        );
      }
    },
    LONG,
  );
});

describe('IndexedDB machine store in Chromium', () => {
  test(
    'save, load (by owner, oldest write first), overwrite, delete, and reopen round-trip',
    async () => {
      const outdir = mkdtempSync(join(tmpdir(), 'synod-idb-'));
      const bundle = await buildBrowserBundle(outdir, {
        entries: [join(import.meta.dir, '../browser-node/src/node/machine-store-idb.ts')],
        sourcemap: false,
      });
      const script = bundle.files.get('machine-store-idb.js') as string;
      const server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: (req) =>
          new URL(req.url).pathname === '/idb.js'
            ? new Response(Bun.file(script), { headers: { 'content-type': 'text/javascript' } })
            : new Response('<!doctype html><title>idb</title>', { headers: { 'content-type': 'text/html' } }),
      });
      const chrome = await launchChromium();
      try {
        const page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
        await page.goto(`http://127.0.0.1:${server.port}/`);
        const result = await page.evaluate(async () => {
          const { IdbMachineStore } = (await import(
            '/idb.js' as string
          )) as typeof import('../browser-node/src/node/machine-store-idb.ts');
          const store = new IdbMachineStore({ name: 'round-trip' });
          await store.save('alice', 'r2', '{"s":2}', 2000);
          await store.save('alice', 'r1', '{"s":1}', 1000);
          await store.save('bob', 'r1', '{"bob":1}', 1500);
          const first = await store.load('alice');
          await store.save('alice', 'r1', '{"s":"1b"}', 3000);
          const overwritten = await store.load('alice');
          await store.delete('alice', 'r2');
          await store.delete('alice', 'missing');
          const afterDelete = await store.load('alice');
          await store.close();
          const reopened = new IdbMachineStore({ name: 'round-trip' });
          const persisted = { alice: await reopened.load('alice'), bob: await reopened.load('bob') };
          const nobody = await reopened.load('carol');
          await reopened.close();
          let closedError = '';
          await reopened.load('alice').catch((e: Error) => {
            closedError = e.message;
          });
          await IdbMachineStore.destroy('round-trip');
          return { first, overwritten, afterDelete, persisted, nobody, closedError };
        });
        expect(result.first).toEqual([
          { requestId: 'r1', state: '{"s":1}' },
          { requestId: 'r2', state: '{"s":2}' },
        ]);
        expect(result.overwritten).toEqual([
          { requestId: 'r2', state: '{"s":2}' },
          { requestId: 'r1', state: '{"s":"1b"}' },
        ]);
        expect(result.afterDelete).toEqual([{ requestId: 'r1', state: '{"s":"1b"}' }]);
        expect(result.persisted).toEqual({
          alice: [{ requestId: 'r1', state: '{"s":"1b"}' }],
          bob: [{ requestId: 'r1', state: '{"bob":1}' }],
        });
        expect(result.nobody).toEqual([]);
        expect(result.closedError).toContain('closed');
      } finally {
        await chrome.close();
        server.stop(true);
        rmSync(outdir, { recursive: true, force: true });
      }
    },
    LONG,
  );
});
