/**
 * The official `openai` npm client, unchanged, against a relay served over real HTTP (Bun.serve on
 * 127.0.0.1) with real serving nodes (stories260K + USE Lite) on an in-memory network.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import OpenAI from 'openai';
import { startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';

interface SynodExtra {
  requestId: string;
  status: string;
  verdictDigest: string;
  transcriptRoot: string;
  verify: string;
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
  test('models.list() names the served model; models.retrieve() finds it, and 404s an unknown one', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toContain('stories260K');
    expect(await client.models.retrieve('stories260K')).toMatchObject({ id: 'stories260K', object: 'model' });
    const err = await caught(client.models.retrieve('no-such-model'));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('UNKNOWN_MODEL');
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
    for await (const chunk of stream) {
      chunks++;
      const c = chunk.choices[0];
      text += c?.delta.content ?? '';
      if (c?.finish_reason) finish = c.finish_reason;
      const extra = (chunk as unknown as { synod?: SynodExtra }).synod;
      if (extra) synod = extra;
      if (chunk.usage)
        usages.push({ chunk: chunks, choices: chunk.choices.length, total: chunk.usage.total_tokens });
    }
    expect(chunks).toBeGreaterThan(2);
    expect(finish).toBe('stop');
    // include_usage, as OpenAI does it: one last chunk with the usage and no choices.
    expect(usages).toHaveLength(1);
    expect(usages[0]).toMatchObject({ chunk: chunks, choices: 0 });
    expect(usages[0]?.total).toBeGreaterThan(0);
    expect(synod?.verdictDigest).toMatch(/^[0-9a-f]{64}$/);
    const stored = await winnerOf(synod?.requestId ?? '');
    expect(text).toBe(stored.output);
    expect(text.length).toBeGreaterThan(0);
  }, 120_000);

  test('an unknown model is an OpenAI-style 400 with code UNKNOWN_MODEL', async () => {
    const err = await caught(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(400);
    expect(e.code).toBe('UNKNOWN_MODEL');
    expect(e.type).toBe('invalid_request_error');
    expect(e.message).toContain('no-such-model');
  });

  test('a bad API key is an AuthenticationError; n > 1 is a 400 INVALID_INPUT', async () => {
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
    expect((n2 as InstanceType<typeof OpenAI.APIError>).code).toBe('INVALID_INPUT');
  });

  test('the neutral values frameworks send by default pass', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [
        { role: 'system', content: 'You tell stories.' },
        { role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] },
      ],
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
    });
    expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
  }, 120_000);

  test.each([
    ['frequency_penalty', { frequency_penalty: 0.5 }],
    ['presence_penalty', { presence_penalty: -1 }],
    ['logprobs', { logprobs: true }],
    ['logit_bias', { logit_bias: { '50256': -100 } }],
    ['stop', { stop: ['\n'] }],
    ['tools', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }],
    ['tool_choice', { tool_choice: 'required' }],
    ['response_format', { response_format: { type: 'json_object' } }],
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
      const before = await stored();
      const err = await caught(
        client.chat.completions.create({
          model: 'stories260K',
          messages: [{ role: 'user', content: 'hi' }],
          ...extra,
        } as Parameters<typeof client.chat.completions.create>[0]),
      );
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.APIError>;
      expect(e.code).toBe('UNSUPPORTED_PARAMETER');
      expect(e.param).toBe(param);
      expect(e.type).toBe('invalid_request_error');
      expect(await stored()).toBe(before);
    },
  );
});

/** Requests stored anywhere: the history and the admission log. */
async function stored(): Promise<number> {
  const counts = await t.relay.store.counts();
  return Object.values(counts).reduce((a, b) => a + b, 0) + (await t.relay.intake.count());
}
