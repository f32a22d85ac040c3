/**
 * The official `openai` npm client, unchanged, against a relay served over real HTTP (Bun.serve on
 * 127.0.0.1) with real serving nodes (stories260K + USE Lite) on an in-memory network.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from 'bun:test';
import OpenAI from 'openai';
import { edgeError } from '../edge/src/http/errors.ts';
import { loseCommitAnswers, startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';

interface SynodExtra {
  requestId: string;
  status: string;
  verdictDigest: string;
  transcriptRoot: string;
  verify: string;
  verdict: { accepted: { nodeId: string }[] } | null;
  attestations: { nodeId: string; agrees: boolean }[];
}

/** The official client, retrying as it does by default (twice), counting the HTTP calls it makes. */
function countingClient(): { client: OpenAI; calls: number } {
  const counted = {
    calls: 0,
    client: new OpenAI({
      baseURL: `${t.relay.url}/v1`,
      apiKey: t.apiKey,
      maxRetries: 2,
      fetch: (input, init) => {
        counted.calls++;
        return fetch(input, init);
      },
    }),
  };
  return counted;
}

/** The seal members of a stored request, by node id. */
async function sealMembers(requestId: string): Promise<string[]> {
  const view = (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as {
    seal: { members: { nodeId: string }[] };
  };
  return view.seal.members.map((m) => m.nodeId).sort();
}

let t: TestNetwork;
let client: OpenAI;

beforeAll(async () => {
  t = await startTestNetwork({ quotaPerDay: 1000 });
  client = new OpenAI({ baseURL: `${t.relay.url}/v1`, apiKey: t.apiKey, maxRetries: 0, timeout: 120_000 });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

async function winnerOf(requestId: string): Promise<{ output: string; verdictDigest: string }> {
  const r = await fetch(`${t.relay.url}/v1/inference/${requestId}`);
  const j = (await r.json()) as {
    status: string;
    verdict: { winner: { output: string }; verdictDigest: string };
  };
  expect(j.status).toBe('verdict');
  return { output: j.verdict.winner.output, verdictDigest: j.verdict.verdictDigest };
}

/**
 * The finish reason the winner's reveal carries in the request's verified transcript (`stop` when it
 * has none), checked to be the only one the winner revealed.
 */
async function winnerFinish(requestId: string): Promise<string> {
  const r = await fetch(`${t.relay.url}/v1/verify/${requestId}`);
  const j = (await r.json()) as {
    ok: boolean;
    verdict: { winner: { nodeId: string; output: string } };
    transcript: {
      packets: { type: string; from: string; body: { output?: string; finishReason?: string } }[];
    };
  };
  expect(j.ok).toBe(true);
  const mine = j.transcript.packets.filter((p) => p.type === 'reveal' && p.from === j.verdict.winner.nodeId);
  expect(mine).toHaveLength(1);
  expect(mine[0]?.body.output).toBe(j.verdict.winner.output);
  return mine[0]?.body.finishReason ?? 'stop';
}

/** The error a call rejects with (the client's promises are lazy thenables, so await them here). */
async function caught(p: PromiseLike<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
}

describe('the openai client against the relay', () => {
  test('models.list() names the served model and synod; models.retrieve() finds them, and 404s an unknown one', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toContain('stories260K');
    expect(ids.at(-1)).toBe('synod');
    expect(await client.models.retrieve('stories260K')).toMatchObject({ id: 'stories260K', object: 'model' });
    expect(await client.models.retrieve('synod')).toMatchObject({ id: 'synod', object: 'model' });
    const err = await caught(client.models.retrieve('no-such-model'));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('UNKNOWN_MODEL');
  });

  test("models.list() and models.retrieve() when the network cannot say what it serves: OpenAI's error body", async () => {
    // As an edge relay's gateway out of reach answers (GatewayRelayNetwork.servedModels).
    const network = t.relay.network;
    network.servedModels = () =>
      Promise.reject(edgeError(503, 'NETWORK_UNAVAILABLE', 'the gateway relay is unreachable'));
    try {
      for (const path of ['/v1/models', '/v1/models/stories260K']) {
        const r = await fetch(`${t.relay.url}${path}`);
        expect(r.status).toBe(503);
        expect(await r.json()).toEqual({
          error: {
            message: 'the gateway relay is unreachable',
            type: 'server_error',
            param: null,
            code: 'NETWORK_UNAVAILABLE',
          },
        });
      }
      const err = await caught(client.models.list());
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('NETWORK_UNAVAILABLE');
    } finally {
      network.servedModels = Object.getPrototypeOf(network).servedModels;
    }
  });

  test('chat.completions.create answers with the verdict winner and the synod proof', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 24,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.choices).toHaveLength(1);
    const content = r.choices[0]?.message.content ?? '';
    expect(content.length).toBeGreaterThan(0);
    const synod = (r as unknown as { synod: SynodExtra }).synod;
    expect(synod.status).toBe('verdict');
    // The client's own request id is the Synod request id (from x-request-id).
    expect(r._request_id).toBe(synod.requestId);
    expect(synod.verdictDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(synod.transcriptRoot).toMatch(/^[0-9a-f]{64}$/);
    const stored = await winnerOf(synod.requestId);
    expect(content).toBe(stored.output);
    expect(synod.verdictDigest).toBe(stored.verdictDigest);
    // The seal members' attestations of the verdict ride along (the answer waits moments for them).
    expect(synod.attestations.map((a) => a.nodeId).sort()).toEqual(await sealMembers(synod.requestId));
    expect(synod.attestations.every((a) => a.agrees)).toBe(true);
    // The proof verifies through the public verifier.
    const v = await fetch(`${t.relay.url}/v1/verify/${synod.requestId}`);
    expect(v.status).toBe(200);
    expect(((await v.json()) as { verdictDigest: string }).verdictDigest).toBe(synod.verdictDigest);
  }, 120_000);

  test('stream: true delivers deltas that concatenate to the winner, then ends', async () => {
    const stream = await client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'The little dog' }],
      max_tokens: 24,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let chunks = 0;
    let synod: SynodExtra | undefined;
    const usages: { chunk: number; choices: number; total: number }[] = [];
    const models = new Set<string>();
    for await (const chunk of stream) {
      chunks++;
      models.add(chunk.model);
      const c = chunk.choices[0];
      text += c?.delta.content ?? '';
      if (c?.finish_reason) finish = c.finish_reason;
      const extra = (chunk as unknown as { synod?: SynodExtra }).synod;
      if (extra) synod = extra;
      if (chunk.usage)
        usages.push({ chunk: chunks, choices: chunk.choices.length, total: chunk.usage.total_tokens });
    }
    expect(chunks).toBeGreaterThan(2);
    // One model name across the stream, as OpenAI sends it.
    expect([...models]).toEqual(['stories260K']);
    expect(finish).not.toBeNull();
    // include_usage, as OpenAI does it: one last chunk with the usage and no choices.
    expect(usages).toHaveLength(1);
    expect(usages[0]).toMatchObject({ chunk: chunks, choices: 0 });
    expect(usages[0]?.total).toBeGreaterThan(0);
    expect(synod?.verdictDigest).toMatch(/^[0-9a-f]{64}$/);
    const stored = await winnerOf(synod?.requestId ?? '');
    expect(text).toBe(stored.output);
    expect(text.length).toBeGreaterThan(0);
    // `stop` or `length`, as the winner's reveal says (stories260K rarely ends a story in 24 tokens).
    expect(finish).toBe(await winnerFinish(synod?.requestId ?? ''));
    expect(synod?.attestations.map((a) => a.nodeId).sort()).toEqual(
      await sealMembers(synod?.requestId ?? ''),
    );
  }, 120_000);

  test('a streamed completion replayed by its Idempotency-Key is the same in every chunk: id, created, text', async () => {
    const ask = async () => {
      const stream = await client.chat.completions.create(
        {
          model: 'stories260K',
          messages: [{ role: 'user', content: 'The old tree' }],
          max_tokens: 8,
          stream: true,
        },
        { headers: { 'Idempotency-Key': 'stream-replay-1' } },
      );
      const chunks: { id: string; created: number }[] = [];
      let text = '';
      for await (const chunk of stream) {
        chunks.push({ id: chunk.id, created: chunk.created });
        text += chunk.choices[0]?.delta.content ?? '';
      }
      return { chunks, text };
    };
    const first = await ask();
    // The replay comes in a later second than the request it answers.
    await Bun.sleep(1_100);
    const replay = await ask();
    const [head] = first.chunks;
    expect(head).toBeDefined();
    for (const chunk of [...first.chunks, ...replay.chunks]) expect(chunk).toEqual(head as never);
    expect(replay.text).toBe(first.text);
  }, 120_000);

  test('an answer cut at max_tokens says finish_reason "length", streamed and not', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 3,
    });
    expect(r.choices[0]?.finish_reason).toBe('length');
    expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
    // The usage is the winner's engine's own count, as its signed reveal says: 3 tokens of output (cut),
    // and the prompt as the chat template made it (more tokens than its 16 characters / 4).
    const view = (await (
      await fetch(`${t.relay.url}/v1/inference/${(r as unknown as { synod: SynodExtra }).synod.requestId}`)
    ).json()) as {
      reveals: {
        nodeId: string;
        usage?: { promptTokens: number; completionTokens: number };
        finishReason?: string;
      }[];
    };
    const winner = (r as unknown as { synod: { verdict: { winner: { nodeId: string } } } }).synod.verdict
      .winner;
    const revealed = view.reveals.find((x) => x.nodeId === winner.nodeId)?.usage;
    expect(revealed?.completionTokens).toBe(3);
    // The request's own view says it too, for a caller of the native API.
    expect(view.reveals.find((x) => x.nodeId === winner.nodeId)?.finishReason).toBe('length');
    expect(r.usage).toEqual({
      prompt_tokens: revealed?.promptTokens ?? -1,
      completion_tokens: 3,
      total_tokens: (revealed?.promptTokens ?? -1) + 3,
    });
    expect(r.usage?.prompt_tokens).toBeGreaterThan(4);
    // The winner's own signed reveal says so, and the transcript holding it verifies.
    expect(await winnerFinish((r as unknown as { synod: SynodExtra }).synod.requestId)).toBe('length');

    const stream = await client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'The little dog' }],
      max_tokens: 3,
      stream: true,
    });
    const finishes: (string | null)[] = [];
    let synod: SynodExtra | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c) finishes.push(c.finish_reason);
      synod = (chunk as unknown as { synod?: SynodExtra }).synod ?? synod;
    }
    expect(finishes.at(-1)).toBe('length');
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(await winnerFinish(synod?.requestId ?? '')).toBe('length');
  }, 120_000);

  test("an unknown model is OpenAI's 404 (a NotFoundError) with code UNKNOWN_MODEL, naming `model`", async () => {
    const err = await caught(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(404);
    expect(e.code).toBe('UNKNOWN_MODEL');
    expect(e.type).toBe('not_found_error');
    expect(e.message).toContain('no-such-model');
  });

  test.each([
    ['max_tokens', { max_tokens: 8192 }],
    ['max_completion_tokens', { max_tokens: 16, max_completion_tokens: 0 }],
    ['temperature', { temperature: 2.5 }],
    ['top_p', { top_p: 1.5 }],
    ['seed', { seed: -1 }],
    ['model', { model: 'stories260K,synod' }],
    ['synod.frame.secDistance', { synod: { frame: { secDistance: 0.9 } } }],
    // A frame field one level too high: not dropped (the request would run at the default quorum).
    ['synod.quorum', { synod: { quorum: 1 } }],
    ['top_k', { top_k: 1001 }],
    ['stream_options', { stream_options: { include_usage: true } }],
  ] as const)(
    'a bad %s is a 400 naming it as the caller sent it, and stores nothing',
    async (param, extra) => {
      const e = await refused(extra);
      expect(e.param).toBe(param);
      expect(e.message.startsWith(`400 ${param}`)).toBe(true);
    },
  );

  test('an error that a retry cannot get past says x-should-retry: false, and the client sends the call once', async () => {
    const counted = countingClient();
    const counting = counted.client;
    const ask = (content: string) =>
      counting.chat.completions.create(
        { model: 'stories260K', messages: [{ role: 'user', content }], max_tokens: 8 },
        { headers: { 'Idempotency-Key': 'openai-retry-1' } },
      );
    await ask('Once upon a time');
    counted.calls = 0;
    // The same key with another body: 409, which the client retries by default.
    const err = await caught(ask('Another story'));
    expect(err).toBeInstanceOf(OpenAI.ConflictError);
    expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('x-should-retry')).toBe('false');
    expect(counted.calls).toBe(1);
  }, 120_000);

  test('a failure after the request was taken is final without an Idempotency-Key; with one the retry replays it', async () => {
    const counted = countingClient();
    const counting = counted.client;
    const ask = (headers?: Record<string, string>) =>
      counting.chat.completions.create(
        { model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8 },
        headers ? { headers } : {},
      );
    const before = await stored();
    // The wait for the verdict cannot read the request (a locked database): a 500 INTERNAL, which the
    // client would retry as a new request, stored and charged again.
    const restore = failNextReads(1);
    try {
      const err = await caught(ask());
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      const e = err as InstanceType<typeof OpenAI.APIError>;
      expect(e.headers?.get('x-should-retry')).toBe('false');
      expect(e.requestID).toMatch(/^[0-9a-f]{64}$/);
      expect(counted.calls).toBe(1);
      expect(await stored()).toBe(before + 1);

      // With an Idempotency-Key the retry is safe: it answers the request the first attempt made.
      counted.calls = 0;
      failNextReads(1);
      const r = await ask({ 'Idempotency-Key': 'read-fails-after-admission' });
      expect(counted.calls).toBe(2);
      expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
      expect(await stored()).toBe(before + 2);
    } finally {
      restore();
    }
  }, 120_000);

  test('an admission whose commit answer is lost, without an Idempotency-Key: the client sends it once, charged once', async () => {
    const counted = countingClient();
    const counting = counted.client;
    // Stored, then the commit's answer is lost: 503 STORE_UNAVAILABLE, which the client would retry.
    const restore = loseCommitAnswers(t.relay);
    // The relay logs the failure (as it should); kept out of the test's output.
    const logged = spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const before = await stored();
      const err = await caught(
        counting.chat.completions.create({
          model: 'stories260K',
          messages: [{ role: 'user', content: 'Once upon a time' }],
          max_tokens: 8,
        }),
      );
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('STORE_UNAVAILABLE');
      expect(counted.calls).toBe(1);
      expect(await stored()).toBe(before + 1);
    } finally {
      logged.mockRestore();
      restore();
    }
  }, 120_000);

  test('a bad API key is an AuthenticationError; n > 1 is a 400 UNSUPPORTED_PARAMETER naming n', async () => {
    const bad = new OpenAI({ baseURL: `${t.relay.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    const auth = await caught(
      bad.chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((auth as InstanceType<typeof OpenAI.APIError>).code).toBe('UNAUTHENTICATED');
    const n2 = await caught(
      client.chat.completions.create({
        model: 'stories260K',
        messages: [{ role: 'user', content: 'hi' }],
        n: 2,
      }),
    );
    expect(n2).toBeInstanceOf(OpenAI.BadRequestError);
    expect((n2 as InstanceType<typeof OpenAI.APIError>).code).toBe('UNSUPPORTED_PARAMETER');
    expect((n2 as InstanceType<typeof OpenAI.APIError>).param).toBe('n');
  });

  test('the neutral values frameworks send by default pass', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [
        { role: 'system', content: 'You tell stories.' },
        { role: 'user', content: 'Hello' },
        // An assistant turn echoed back as frameworks keep it: no tool was called.
        { role: 'assistant', content: 'Hello.', tool_calls: [], function_call: null },
        { role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] },
      ] as Parameters<typeof client.chat.completions.create>[0]['messages'],
      max_tokens: 16,
      temperature: 0,
      top_p: 1,
      n: 1,
      frequency_penalty: 0,
      presence_penalty: 0,
      logprobs: false,
      logit_bias: {},
      stop: [],
      tools: [],
      tool_choice: 'none',
      response_format: { type: 'text' },
      user: 'agent-7',
      store: false,
      metadata: { run: 'test' },
      modalities: ['text'],
      parallel_tool_calls: true,
      service_tier: 'auto',
      prompt_cache_key: 'conversation-1',
      safety_identifier: 'user-1',
    });
    expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
  }, 120_000);

  test.each([
    ['frequency_penalty', { frequency_penalty: 0.5 }],
    ['repetition_penalty', { repetition_penalty: 1.3 }],
    ['min_p', { min_p: 0.1 }],
    ['reasoning_effort', { reasoning_effort: 'low' }],
    ['top_k_typo', { top_k_typo: 40 }],
    ['presence_penalty', { presence_penalty: -1 }],
    ['logprobs', { logprobs: true }],
    ['logit_bias', { logit_bias: { '50256': -100 } }],
    ['stop', { stop: ['\n'] }],
    ['tools', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }],
    ['tool_choice', { tool_choice: 'required' }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['modalities', { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'mp3' } }],
    [
      'messages.0.content.1',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in this picture?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            ],
          },
        ],
      },
    ],
    [
      'messages.1',
      {
        messages: [
          { role: 'user', content: 'What is the weather?' },
          { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
        ],
      },
    ],
  ] as const)(
    '%s the network cannot honour is a 400 UNSUPPORTED_PARAMETER naming it, and stores nothing',
    async (param, extra) => {
      const e = await refused(extra);
      expect(e.code).toBe('UNSUPPORTED_PARAMETER');
      expect(e.param).toBe(param);
      expect(e.type).toBe('invalid_request_error');
    },
  );
});

/** The error a chat completion with `extra` over a minimal body fails with, as a 400, with nothing stored. */
async function refused(extra: object): Promise<InstanceType<typeof OpenAI.APIError>> {
  const before = await stored();
  const err = await caught(
    client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'hi' }],
      ...extra,
    } as Parameters<typeof client.chat.completions.create>[0]),
  );
  expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  expect(await stored()).toBe(before);
  return err as InstanceType<typeof OpenAI.APIError>;
}

/**
 * Make the relay's next `n` reads of a request from its history fail, as a locked or unreachable
 * database would; returns what puts the store's own read back.
 */
function failNextReads(n: number): () => void {
  const store = t.relay.store;
  const own = Object.getPrototypeOf(store).getRequest as typeof store.getRequest;
  let left = n;
  store.getRequest = (requestId) => {
    if (left-- > 0) return Promise.reject(new Error('SQLITE_BUSY: database is locked'));
    return own.call(store, requestId);
  };
  return () => {
    store.getRequest = own;
  };
}

/** Requests stored anywhere: the history and the admission log. */
async function stored(): Promise<number> {
  const counts = await t.relay.store.counts();
  return Object.values(counts).reduce((a, b) => a + b, 0) + (await t.relay.intake.count());
}
