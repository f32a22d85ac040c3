/**
 * POST /v1/chat/completions as agents and frameworks call it, through the relay's app and over real
 * HTTP, with real serving nodes (stories260K + USE Lite) on an in-memory network.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIMITS } from '@synod/shared';
import { loseCommitAnswers, startTestNetwork, type TestNetwork } from '../test-helpers.ts';
import { loneRelay } from '../test-relay.ts';
import { chatParamNames, renamePaths } from './openai.ts';

let t: TestNetwork;
/** A network that dispatches nothing: every request stays queued until its deadline. */
let idle: TestNetwork;

beforeAll(async () => {
  t = await startTestNetwork({ quotaPerDay: 1000 });
  idle = await startTestNetwork({ nodes: 1, maxOpenRequests: 0 });
}, 120_000);
afterAll(async () => {
  await t?.close();
  await idle?.close();
});

const chat = (n: TestNetwork, body: unknown, init: RequestInit = {}) =>
  n.relay.app.request('http://127.0.0.1/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });

interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/** Requests stored anywhere: the history and the admission log. */
async function stored(n: TestNetwork): Promise<number> {
  const counts = await n.relay.store.counts();
  return Object.values(counts).reduce((a, b) => a + b, 0) + (await n.relay.intake.count());
}

/** Count the relay's reads of a request from its history; returns the count and what stops counting. */
function countReads(n: TestNetwork): { reads: () => number; restore: () => void } {
  const store = n.relay.store;
  const own = Object.getPrototypeOf(store).getRequest as typeof store.getRequest;
  let reads = 0;
  store.getRequest = (requestId) => {
    reads++;
    return own.call(store, requestId);
  };
  return {
    reads: () => reads,
    restore: () => {
      store.getRequest = own;
    },
  };
}

const ASK = { model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }] };

describe('POST /v1/chat/completions: what agents send', () => {
  test.each([
    ['null', 'null'],
    ['an array', '[]'],
    ['a string', '"hello"'],
    ['a number', '42'],
  ])(
    'a JSON body that is %s is a 400 INVALID_INPUT about the body (param null), and stores nothing',
    async (_, body) => {
      const before = await stored(t);
      const r = await chat(t, body);
      expect(r.status).toBe(400);
      expect(r.headers.get('x-should-retry')).toBe('false');
      const e = (await r.json()) as OpenAiErrorBody;
      expect(e.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'INVALID_INPUT' });
      expect(e.error.message.startsWith('body: ')).toBe(true);
      expect(await stored(t)).toBe(before);
    },
  );

  test('a text content part without its text is malformed input, named down to its text', async () => {
    const r = await chat(t, { ...ASK, messages: [{ role: 'user', content: [{ type: 'text' }] }] });
    expect(r.status).toBe(400);
    expect(((await r.json()) as OpenAiErrorBody).error).toMatchObject({
      code: 'INVALID_INPUT',
      param: 'messages.0.content.0.text',
    });
  });

  test.each([
    ['top_logprobs', { top_logprobs: 2 }],
    ['audio', { audio: { voice: 'alloy', format: 'mp3' } }],
  ] as const)('%s alone is refused naming it, as sent', async (param, extra) => {
    const r = await chat(t, { ...ASK, ...extra });
    expect(r.status).toBe(400);
    expect(((await r.json()) as OpenAiErrorBody).error).toMatchObject({
      code: 'UNSUPPORTED_PARAMETER',
      param,
    });
  });

  test.each([
    ['repetition_penalty', { repetition_penalty: 1.3 }],
    ['min_p', { min_p: 0.1 }],
    ['typical_p', { typical_p: 0.5 }],
    ['reasoning_effort', { reasoning_effort: 'low' }],
    ['verbosity', { verbosity: 'low' }],
    ['web_search_options', { web_search_options: {} }],
    // Any member Synod does not know, whatever its value: it may change the answer.
    ['mirostat', { mirostat: 2 }],
    ['grammar', { grammar: 'root ::= "yes"' }],
    ['x', { x: JSON.parse(`${'['.repeat(5_000)}${']'.repeat(5_000)}`) }],
  ] as const)(
    '%s is a 400 UNSUPPORTED_PARAMETER naming it, never dropped, and stores nothing',
    async (param, extra) => {
      const before = await stored(t);
      const r = await chat(t, { ...ASK, ...extra });
      expect(r.status).toBe(400);
      expect(r.headers.get('x-should-retry')).toBe('false');
      const e = (await r.json()) as OpenAiErrorBody;
      expect(e.error).toMatchObject({ type: 'invalid_request_error', code: 'UNSUPPORTED_PARAMETER', param });
      expect(e.error.message).toStartWith(param);
      expect(await stored(t)).toBe(before);
    },
  );

  test('a member of synod that is not its own is a 400 naming it, and says where a frame field goes', async () => {
    const before = await stored(t);
    const r = await chat(t, { ...ASK, synod: { quorum: 1 } });
    expect(r.status).toBe(400);
    const e = (await r.json()) as OpenAiErrorBody & { error: { hint: string } };
    expect(e.error).toMatchObject({ code: 'INVALID_INPUT', param: 'synod.quorum' });
    expect(e.error.message).toBe(
      'synod.quorum: synod takes frame and embeddingModel; did you mean synod.frame.quorum?',
    );
    expect(e.error.hint).toContain('synod.frame (');
    const other = await chat(t, { ...ASK, synod: { model: 'x' } });
    expect(((await other.json()) as OpenAiErrorBody).error).toMatchObject({
      param: 'synod.model',
      message: 'synod.model: synod takes frame and embeddingModel',
    });
    expect(await stored(t)).toBe(before);
  });

  test('a member Synod ignores is still read as OpenAI types it', async () => {
    const r = await chat(
      t,
      `{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"user":1e999}`,
    );
    expect(r.status).toBe(400);
    expect(((await r.json()) as OpenAiErrorBody).error).toMatchObject({
      code: 'INVALID_INPUT',
      param: 'user',
    });
  });

  test('top_k is params.topK, validated as there; neutral samplers and the members Synod ignores pass', async () => {
    const r = await chat(t, {
      ...ASK,
      max_tokens: 4,
      top_k: 1,
      repetition_penalty: 1,
      min_p: 0,
      typical_p: 1,
      top_a: 0,
      reasoning_effort: null,
      verbosity: null,
      user: 'agent-7',
      metadata: { run: 'test' },
      store: false,
      service_tier: 'auto',
      prompt_cache_key: 'conversation-1',
      prompt_cache_retention: 'in_memory',
      safety_identifier: 'user-1',
      parallel_tool_calls: false,
      prediction: { type: 'content', content: 'Once' },
      synod: { frame: { quorum: 1 } },
    });
    expect(r.status).toBe(200);
    const requestId = r.headers.get('x-request-id') as string;
    const view = (await (await t.relay.app.request(`http://127.0.0.1/v1/inference/${requestId}`)).json()) as {
      request: { params: Record<string, number> };
    };
    expect(view.request.params).toEqual({ maxTokens: 4, temperature: 0, topK: 1 });

    // 0 and -1 are "off" to the servers that take top_k: no top-k, as when left out.
    for (const off of [0, -1]) {
      const r = await chat(t, { ...ASK, max_tokens: 4, top_k: off, synod: { frame: { quorum: 1 } } });
      expect(r.status).toBe(200);
      const id = r.headers.get('x-request-id') as string;
      const seen = (await (await t.relay.app.request(`http://127.0.0.1/v1/inference/${id}`)).json()) as {
        request: { params: Record<string, number> };
      };
      expect(seen.request.params['topK']).toBeUndefined();
    }
    const over = await chat(t, { ...ASK, top_k: 1001 });
    expect(over.status).toBe(400);
    const e = (await over.json()) as OpenAiErrorBody;
    expect(e.error).toMatchObject({ code: 'INVALID_INPUT', param: 'top_k' });
    expect(e.error.message).toStartWith('top_k: ');
  }, 60_000);

  test('top_p: 0, the most likely token alone, is greedy decoding: the signed request says temperature 0', async () => {
    const r = await chat(t, {
      ...ASK,
      max_tokens: 4,
      temperature: 0.8,
      top_p: 0,
      synod: { frame: { quorum: 1 } },
    });
    expect(r.status).toBe(200);
    const view = (await (
      await t.relay.app.request(`http://127.0.0.1/v1/inference/${r.headers.get('x-request-id')}`)
    ).json()) as { request: { params: Record<string, number> } };
    expect(view.request.params).toEqual({ maxTokens: 4, temperature: 0 });
  }, 60_000);

  test.each([
    ['top_p', { top_p: -0.1 }, 'top_p: top_p must be from 0 to 1 (0: the most likely token alone)'],
    // A temperature out of range is not hidden by top_p: 0.
    ['temperature', { temperature: 5, top_p: 0 }, 'temperature: '],
    [
      'seed',
      { seed: -1 },
      'seed: seed must be an integer from 0 to 4294967294 (every node of the quorum samples from it alike); a negative seed does not ask for a random one here: leave seed out',
    ],
    ['seed', { seed: 2 ** 32 }, 'seed: seed must be an integer from 0 to 4294967294'],
    // llama.cpp's "random seed": each node would sample its own way.
    ['seed', { seed: 2 ** 32 - 1 }, 'seed: seed must be an integer from 0 to 4294967294'],
    [
      'model',
      { model: 'stories260K,synod' },
      'model: synod stands alone: it asks for the relay\'s default models, and is not a model to join with others; send "synod" alone, or name the models (GET /v1/models lists them)',
    ],
  ] as const)(
    'a bad %s is a 400 INVALID_INPUT saying what to send, and stores nothing',
    async (param, extra, message) => {
      const before = await stored(t);
      const r = await chat(t, { ...ASK, ...extra });
      expect(r.status).toBe(400);
      const e = (await r.json()) as OpenAiErrorBody;
      expect(e.error).toMatchObject({ code: 'INVALID_INPUT', param });
      expect(e.error.message).toStartWith(message);
      expect(await stored(t)).toBe(before);
    },
  );

  test('with stream_options.include_usage every chunk carries usage, null until the last (as OpenAI)', async () => {
    const r = await chat(t, {
      ...ASK,
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(r.status).toBe(200);
    const text = await r.text();
    // Every event is one `data:` line and a blank line; the last is [DONE].
    expect(text.replace(/^: keep-alive\n\n/gm, '')).toMatch(/^(data: [^\n]+\n\n)+$/);
    const data = [...text.matchAll(/^data: (.*)$/gm)].map((m) => m[1] as string);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: unknown[]; usage?: unknown });
    expect(chunks.length).toBeGreaterThan(2);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toMatchObject({ total_tokens: expect.any(Number) });
    for (const c of chunks.slice(0, -1)) {
      expect(c.choices).toHaveLength(1);
      expect(c.usage).toBeNull();
    }
  }, 60_000);
});

describe('POST /v1/chat/completions: an Idempotency-Key is bound to the inference request, not to transport options', () => {
  const keyed = (key: string) => ({
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${t.apiKey}`,
      'idempotency-key': key,
    },
  });

  test('a streamed call whose stream broke, retried without stream: the same request, answered and stored once', async () => {
    const before = await stored(t);
    const streamed = await chat(
      t,
      { ...ASK, max_tokens: 4, stream: true, stream_options: { include_usage: true }, user: 'agent-1' },
      keyed('idem-stream-then-not'),
    );
    expect(streamed.status).toBe(200);
    const requestId = streamed.headers.get('x-request-id');
    // The caller reads nothing more of the stream (it broke), and retries without stream or user.
    await streamed.body?.cancel();
    const retried = await chat(t, { ...ASK, max_tokens: 4 }, keyed('idem-stream-then-not'));
    expect(retried.status).toBe(200);
    expect(retried.headers.get('x-request-id')).toBe(requestId);
    expect(((await retried.json()) as { synod: { requestId: string } }).synod.requestId).toBe(
      requestId as string,
    );
    expect(await stored(t)).toBe(before + 1);
  }, 60_000);

  test('the same conversation written another way is the same request; another max_tokens is a 409', async () => {
    const first = await chat(
      t,
      { ...ASK, max_tokens: 4, synod: { frame: { quorum: 1 } } },
      keyed('idem-same-input'),
    );
    expect(first.status).toBe(200);
    // Text as a content part, and a member Synod ignores (here one with no canonical form): the same input.
    const same = await chat(
      t,
      `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text","text":"Once upon a time"}]}],"max_tokens":4,"synod":{"frame":{"quorum":1}},"user":"\\ud800"}`,
      keyed('idem-same-input'),
    );
    expect(same.status).toBe(200);
    expect(same.headers.get('x-request-id')).toBe(first.headers.get('x-request-id'));
    const other = await chat(
      t,
      { ...ASK, max_tokens: 5, synod: { frame: { quorum: 1 } } },
      keyed('idem-same-input'),
    );
    expect(other.status).toBe(409);
    expect(((await other.json()) as OpenAiErrorBody).error.code).toBe('IDEMPOTENCY_CONFLICT');
  }, 60_000);
});

describe('POST /v1/chat/completions: failures', () => {
  test("a prompt longer than the model's context: every node declines it, and the answer is OpenAI's 400 context_length_exceeded, at once", async () => {
    const long = 'Once upon a time, there was a little girl who liked to play. '.repeat(300);
    const started = Date.now();
    const r = await chat(t, {
      model: 'stories260K',
      messages: [{ role: 'user', content: long }],
      max_tokens: 4,
      synod: { frame: { maxTimeMs: 60_000 } },
    });
    // Declined by the 3 nodes as they tokenized it: nothing waited for the request's 60 s.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.status).toBe(400);
    expect(r.headers.get('x-should-retry')).toBe('false');
    const { error } = (await r.json()) as OpenAiErrorBody & {
      error: { hint?: string; details: { requestId: string; declines: { promptTokens: number }[] } };
    };
    expect(error).toMatchObject({
      type: 'invalid_request_error',
      code: 'context_length_exceeded',
      param: 'messages',
      details: { reason: 'DECLINED', code: 'CONTEXT_LENGTH_EXCEEDED' },
    });
    expect(error.message).toMatch(
      /^This model's maximum context length is \d+ tokens\. However, your messages resulted in \d+ tokens \(stories260K, as 3 nodes said\)\. Please reduce the length of the messages\.$/,
    );
    expect(error.details.declines).toHaveLength(3);
    expect(error.hint).toStartWith('shorten the messages');
    // The request's own view says the same, signed by each node.
    const view = (await (
      await t.relay.app.request(`http://127.0.0.1/v1/inference/${error.details.requestId}`, {
        headers: { authorization: `Bearer ${t.apiKey}` },
      })
    ).json()) as { status: string; error: string; commits: unknown[]; declines: { reason: string }[] };
    expect(view).toMatchObject({ status: 'expired', error: 'DECLINED', commits: [] });
    expect(view.declines.map((d) => d.reason)).toEqual([
      'context-exceeded',
      'context-exceeded',
      'context-exceeded',
    ]);
    // Streamed alike: the nodes decline before the stream's 200 is sent, so the answer is the same 400.
    const streamed = await chat(t, {
      model: 'stories260K',
      messages: [{ role: 'user', content: long }],
      max_tokens: 4,
      stream: true,
    });
    expect(streamed.status).toBe(400);
    expect(streamed.headers.get('content-type')).toContain('application/json');
    expect(((await streamed.json()) as OpenAiErrorBody).error.code).toBe('context_length_exceeded');
  }, 60_000);

  const turns = (n: number, chars = 1) =>
    Array.from({ length: n }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'x'.repeat(chars) }));
  test.each([
    [
      'more messages than the protocol takes',
      turns(LIMITS.maxMessages + 1),
      { limit: 'maxMessages', max: 64, actual: 65 },
      "Synod's maximum context length is 64 messages (a limit of its protocol, whatever the model's context). However, you sent 65 messages. Please reduce the length of the messages.",
    ],
    [
      'a message longer than the protocol takes',
      [...turns(2), { role: 'user', content: 'x'.repeat(LIMITS.maxPromptChars + 1) }],
      { limit: 'maxPromptChars', max: 32_768, actual: 32_769, index: 2 },
      "Synod's maximum context length is 32768 characters in a message (a limit of its protocol, whatever the model's context). However, messages.2 holds 32769 characters. Please reduce the length of the messages.",
    ],
    [
      'messages longer in all than the protocol takes',
      turns(3, 30_000),
      { limit: 'maxMessagesChars', max: 65_536, actual: 90_000 },
      "Synod's maximum context length is 65536 characters of messages in all (a limit of its protocol, whatever the model's context). However, your messages hold 90000 characters. Please reduce the length of the messages.",
    ],
  ])(
    "%s: OpenAI's 400 context_length_exceeded, streamed or not, naming the limit and the figures; nothing stored",
    async (_, messages, figures, message) => {
      const before = await stored(t);
      for (const stream of [false, true]) {
        const r = await chat(t, { ...ASK, messages, stream });
        expect(r.status).toBe(400);
        expect(r.headers.get('content-type')).toContain('application/json');
        expect(r.headers.get('x-should-retry')).toBe('false');
        const { error } = (await r.json()) as OpenAiErrorBody & { error: { hint: string } };
        expect(error).toMatchObject({
          type: 'invalid_request_error',
          code: 'context_length_exceeded',
          param: 'messages',
          message,
          details: { code: 'CONTEXT_LENGTH_EXCEEDED', reason: 'PROTOCOL_LIMIT', ...figures },
        });
        expect(error.hint).toStartWith('drop earlier turns of the conversation');
      }
      expect(await stored(t)).toBe(before);
    },
  );

  test('as many messages as the protocol takes are taken (to the nodes, which measure them by their context)', async () => {
    const r = await chat(t, {
      ...ASK,
      messages: turns(LIMITS.maxMessages),
      max_tokens: 2,
      synod: { frame: { quorum: 1 } },
    });
    expect(r.status).toBe(200);
  }, 60_000);

  test('max_tokens no node can write within synod.frame.maxTimeMs: the 504 QUORUM_NOT_MET hint says to lower one or raise the other', async () => {
    // The nodes estimate 2,000 tokens at 500 a second: 4 s, past the request's 1 s. None commits.
    const r = await chat(t, {
      ...ASK,
      max_tokens: 2_000,
      synod: { frame: { maxTimeMs: 1_000, revealWindowMs: 250 } },
    });
    expect(r.status).toBe(504);
    const { error } = (await r.json()) as OpenAiErrorBody & { error: { hint: string; details: unknown } };
    expect(error).toMatchObject({ code: 'EXPIRED', details: { reason: 'QUORUM_NOT_MET' } });
    expect(error.hint).toStartWith(
      '0 nodes committed of the quorum of 3 asked: nodes take no part in a request they cannot finish in time, by their own estimate of writing up to max_tokens (2000) tokens within synod.frame.maxTimeMs (1000 ms)',
    );
    expect(error.hint).toContain('lower max_tokens or raise synod.frame.maxTimeMs');
  }, 30_000);

  test('a failure the relay did not expect (a read of the request that fails) is logged, not only answered', async () => {
    const store = t.relay.store;
    const own = Object.getPrototypeOf(store).getRequest as typeof store.getRequest;
    store.getRequest = () => Promise.reject(new Error('SQLITE_BUSY: database is locked'));
    const logged = spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const r = await chat(t, { ...ASK, max_tokens: 4 });
      expect(r.status).toBe(500);
      expect(((await r.json()) as OpenAiErrorBody).error.code).toBe('INTERNAL');
      const lines = logged.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 'error',
          msg: 'unhandled',
          code: 'INTERNAL',
          route: 'POST /v1/chat/completions',
          err: expect.stringContaining('SQLITE_BUSY'),
        }),
      );
    } finally {
      logged.mockRestore();
      store.getRequest = own;
    }
  });

  test('a request that cannot be stored is logged with its reason, as on /v1/inference', async () => {
    const admissions = t.relay.admissions;
    const own = admissions.admit;
    admissions.admit = () => Promise.reject(new Error('SQLITE_IOERR: disk I/O error'));
    const logged = spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const r = await chat(t, { ...ASK, max_tokens: 4 });
      expect(r.status).toBe(503);
      const lines = logged.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'request failed',
          code: 'STORE_UNAVAILABLE',
          route: 'POST /v1/chat/completions',
          reason: expect.stringContaining('SQLITE_IOERR'),
        }),
      );
    } finally {
      logged.mockRestore();
      admissions.admit = own;
    }
  });

  test('an admission whose commit answer is lost (it may be stored) is final without an Idempotency-Key; with one a retry replays it', async () => {
    // The commit goes through, then its answer is lost (a writer thread restarted, WRITER_TIMEOUT).
    const restore = loseCommitAnswers(t.relay);
    const logged = spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const before = await stored(t);
      const unkeyed = await chat(t, { ...ASK, max_tokens: 4 });
      expect(unkeyed.status).toBe(503);
      expect(((await unkeyed.json()) as OpenAiErrorBody).error.code).toBe('STORE_UNAVAILABLE');
      // It was stored: a retry would make it a second time, and charge it twice.
      expect(await stored(t)).toBe(before + 1);
      expect(unkeyed.headers.get('x-should-retry')).toBe('false');

      const key = {
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${t.apiKey}`,
          'idempotency-key': 'lost-commit-answer-1',
        },
      };
      const keyed = await chat(t, { ...ASK, max_tokens: 4 }, key);
      expect(keyed.status).toBe(503);
      expect(keyed.headers.get('x-should-retry')).toBeNull();
      expect(await stored(t)).toBe(before + 2);
      restore();
      // The retry with the same key answers the request the first attempt stored.
      const retried = await chat(t, { ...ASK, max_tokens: 4 }, key);
      expect(retried.status).toBe(200);
      expect(await stored(t)).toBe(before + 2);
    } finally {
      logged.mockRestore();
      restore();
    }
  }, 60_000);
});

describe('POST /v1/chat/completions: a client that goes away', () => {
  const slow = { ...ASK, synod: { frame: { maxTimeMs: 20_000, revealWindowMs: 1_000 } } };
  const post = (body: unknown, signal: AbortSignal) =>
    fetch(`${idle.relay.url}/v1/chat/completions`, {
      method: 'POST',
      signal,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${idle.apiKey}` },
      body: JSON.stringify(body),
    });

  test('mid-stream: the relay stops waiting for its verdict', async () => {
    const count = countReads(idle);
    try {
      const gone = new AbortController();
      const r = await post({ ...slow, stream: true }, gone.signal);
      const reader = r.body?.getReader();
      // The role chunk, sent at once; then the relay polls for the verdict.
      expect(new TextDecoder().decode((await reader?.read())?.value)).toContain('"role":"assistant"');
      await Bun.sleep(1_200);
      expect(count.reads()).toBeGreaterThan(0);
      gone.abort();
      await Bun.sleep(300);
      const at = count.reads();
      await Bun.sleep(2_000);
      expect(count.reads()).toBe(at);
    } finally {
      count.restore();
    }
  }, 30_000);

  test('while a completion that is not streamed waits: the relay stops waiting for its verdict', async () => {
    const count = countReads(idle);
    try {
      const gone = new AbortController();
      const answer = post(slow, gone.signal).catch((e: unknown) => e);
      await Bun.sleep(1_200);
      expect(count.reads()).toBeGreaterThan(0);
      gone.abort();
      expect(await answer).toBeInstanceOf(Error);
      await Bun.sleep(300);
      const at = count.reads();
      await Bun.sleep(2_000);
      expect(count.reads()).toBe(at);
    } finally {
      count.restore();
    }
  }, 30_000);
});

describe('POST /v1/chat/completions: a body that arrives too slowly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-openai-slow-'));
  let relay: Awaited<ReturnType<typeof loneRelay>>;
  beforeAll(async () => {
    relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 61, { bodyDeadlineMs: 300 });
  });
  afterAll(async () => {
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('408 BODY_TIMEOUT stored nothing: the official clients may retry it (no x-should-retry: false)', async () => {
    // Half a body over a raw connection; the relay answers once it stops waiting, and closes.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(relay.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (b: Buffer) => chunks.push(b));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.write(
        'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":',
      );
    });
    const [head = '', body = ''] = raw.split('\r\n\r\n');
    expect(head).toStartWith('HTTP/1.1 408');
    expect(head.toLowerCase()).not.toContain('x-should-retry');
    expect(JSON.parse(body)).toMatchObject({
      error: { code: 'BODY_TIMEOUT', type: 'invalid_request_error' },
    });
  });
});

describe('renamePaths', () => {
  test("a hint's input paths are the chat completion's names for them; other words stay", () => {
    const names = chatParamNames('max_completion_tokens');
    expect(renamePaths('ask for a quorum of at most 2 (frame.quorum), or retry', names)).toBe(
      'ask for a quorum of at most 2 (synod.frame.quorum), or retry',
    );
    expect(renamePaths('lower params.maxTokens or params.temperature; the frame stays', names)).toBe(
      'lower max_completion_tokens or temperature; the frame stays',
    );
    expect(renamePaths('send an embedder the nodes serve as embeddingModel', names)).toBe(
      'send an embedder the nodes serve as synod.embeddingModel',
    );
    // Named as the chat completion has them already: kept as they are (not synod.synod.frame.quorum).
    expect(renamePaths('ask a smaller quorum (synod.frame.quorum) or synod.embeddingModel', names)).toBe(
      'ask a smaller quorum (synod.frame.quorum) or synod.embeddingModel',
    );
  });
});
