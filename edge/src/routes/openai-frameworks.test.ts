/**
 * POST /v1/chat/completions as agent frameworks call it: each body below is the exact wire request a
 * framework sent to a local relay (captured from LangChain JS `@langchain/openai` 1.5 and the Vercel AI
 * SDK 6 with `@ai-sdk/openai-compatible` 2 / `@ai-sdk/openai` 3), replayed against the relay's app with
 * real serving nodes (stories260K + USE Lite) on an in-memory network.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { startTestNetwork, type TestNetwork } from '../test-helpers.ts';

let t: TestNetwork;

beforeAll(async () => {
  t = await startTestNetwork({ quotaPerDay: 1000 });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

/** The headers the `openai` client (under LangChain) sends besides its key. */
const STAINLESS = {
  'x-stainless-arch': 'x64',
  'x-stainless-lang': 'js',
  'x-stainless-os': 'Linux',
  'x-stainless-package-version': '6.49.0',
  'x-stainless-retry-count': '0',
  'x-stainless-runtime': 'node',
  'x-stainless-runtime-version': 'v20.20.2',
};

const replay = (wire: string, headers: Record<string, string> = {}) =>
  t.relay.app.request('http://127.0.0.1/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}`, ...headers },
    body: wire,
  });

const ASKED = '"messages":[{"role":"user","content":"Once upon a time"}]';

/** The `data:` payloads of an event stream, parsed, without the final [DONE]. */
function chunks(text: string): { id: string; choices: unknown[]; synod?: { requestId: string } }[] {
  const data = [...text.matchAll(/^data: (.*)$/gm)].map((m) => m[1] as string);
  expect(data.at(-1)).toBe('[DONE]');
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

describe('the completion id names the Synod request in full (frameworks keep the id, not `synod`)', () => {
  test('LangChain ChatOpenAI.invoke: AIMessage.id is `chatcmpl-` and the request id', async () => {
    const r = await replay(`{"model":"stories260K","stream":false,"max_tokens":24,${ASKED}}`, STAINLESS);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { id: string; synod: { requestId: string } };
    const requestId = r.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f]{64}$/);
    expect(body.synod.requestId).toBe(requestId as string);
    expect(body.id).toBe(`chatcmpl-${requestId}`);
    // What a LangChain user does with the message id: strip the prefix and verify the request.
    const verified = await t.relay.app.request(
      `http://127.0.0.1/v1/verify/${body.id.slice('chatcmpl-'.length)}`,
    );
    expect(verified.status).toBe(200);
  }, 60_000);

  test('AI SDK streamText (openai-compatible, includeUsage): every chunk carries the full id', async () => {
    const r = await replay(
      `{"model":"stories260K","max_tokens":24,${ASKED},"stream":true,"stream_options":{"include_usage":true}}`,
    );
    expect(r.status).toBe(200);
    const all = chunks(await r.text());
    const requestId = r.headers.get('x-request-id');
    expect(all.length).toBeGreaterThan(2);
    for (const c of all) expect(c.id).toBe(`chatcmpl-${requestId}`);
    expect(all.find((c) => c.synod)?.synod?.requestId).toBe(requestId as string);
  }, 60_000);
});

describe('what a quorum cannot give is refused as frameworks send it: a 400 they surface, never retried', () => {
  test.each([
    [
      'LangChain withStructuredOutput (json_schema)',
      `{"model":"stories260K","stream":false,"response_format":{"type":"json_schema","json_schema":{"name":"extract","strict":true,"schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"title":{"type":"string","title":"extract"}},"required":["title"],"additionalProperties":false,"title":"extract"}}},"max_tokens":24,${ASKED}}`,
      'response_format',
    ],
    [
      'LangChain withStructuredOutput functionCalling (tool_choice naming a function)',
      `{"model":"stories260K","stream":false,"tools":[{"type":"function","function":{"name":"extract","parameters":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"title":{"type":"string"}},"required":["title"],"additionalProperties":false}}}],"tool_choice":{"type":"function","function":{"name":"extract"}},"max_tokens":24,${ASKED}}`,
      'tools',
    ],
    [
      'LangChain invoke with stop',
      `{"model":"stories260K","stop":["."],"stream":false,"max_tokens":24,${ASKED}}`,
      'stop',
    ],
    [
      'AI SDK generateObject (openai-compatible: json_object)',
      `{"model":"stories260K","max_tokens":24,"response_format":{"type":"json_object"},${ASKED}}`,
      'response_format',
    ],
    [
      'AI SDK streamText with tools',
      `{"model":"stories260K","max_tokens":24,${ASKED},"tools":[{"type":"function","function":{"name":"weather","description":"w","parameters":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}}],"tool_choice":"auto","stream":true,"stream_options":{"include_usage":true}}`,
      'tools',
    ],
  ])('%s', async (_, wire, param) => {
    const r = await replay(wire);
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toContain('application/json');
    expect(r.headers.get('x-should-retry')).toBe('false');
    const e = (await r.json()) as { error: Record<string, unknown> };
    expect(e.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'UNSUPPORTED_PARAMETER',
      param,
      message: expect.stringContaining('not supported'),
    });
  });
});
