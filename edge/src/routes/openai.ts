import { LIMITS } from '@synod/shared';
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import * as z from 'zod';
import { edgeError, HttpError, toHttpError } from '../http/errors.ts';
import { quotaHeaders } from '../http/quota.ts';
import { keepAlive } from '../http/sse-keep-alive.ts';
import type { RequestDetail } from '../store/history-store.ts';
import { findRequest, requestView, TERMINAL } from '../views.ts';
import type { EdgeDeps } from './deps.ts';
import { submit } from './inference.ts';

/**
 * OpenAI-compatible surface, so the official `openai` client and agent frameworks work unchanged.
 * `model` names one model, or several joined by commas, or `synod` for the relay's default list; the
 * answer is the verdict's winner, and the verdict with its proof rides along in the `synod` field.
 * Errors use OpenAI's body `{ error: { message, type, param, code } }` with Synod's stable code.
 */
export const ChatInputSchema = z
  .object({
    model: z.string().min(1).max(512),
    messages: z
      .array(
        z
          .object({
            // `tool` and `function` are read so that they get a precise refusal (see `unsupported`).
            role: z.enum(['system', 'user', 'assistant', 'developer', 'tool', 'function']),
            content: z
              .union([
                z.string(),
                z.array(z.object({ type: z.literal('text'), text: z.string() }).passthrough()).min(1),
              ])
              .nullish(),
          })
          .passthrough(),
      )
      .min(1)
      .max(LIMITS.maxMessages),
    temperature: z.number().nullish(),
    max_tokens: z.number().int().nullish(),
    max_completion_tokens: z.number().int().nullish(),
    seed: z.number().int().nullish(),
    top_p: z.number().nullish(),
    n: z.number().int().nullish(),
    stream: z.boolean().nullish(),
    // Read only to refuse what a quorum cannot honour (see `unsupported`); their neutral values pass.
    frequency_penalty: z.number().nullish(),
    presence_penalty: z.number().nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().nullish(),
    logit_bias: z.record(z.string(), z.number()).nullish(),
    stop: z.union([z.string(), z.array(z.string())]).nullish(),
    tools: z.array(z.unknown()).nullish(),
    functions: z.array(z.unknown()).nullish(),
    tool_choice: z.unknown().optional(),
    function_call: z.unknown().optional(),
    response_format: z.object({ type: z.string() }).passthrough().nullish(),
    /** Synod extension: a partial security frame and embedder, as in POST /v1/inference. */
    synod: z
      .object({ frame: z.record(z.string(), z.unknown()).optional(), embeddingModel: z.string().optional() })
      .optional(),
  })
  .passthrough();
type ChatInput = z.infer<typeof ChatInputSchema>;

/**
 * The first thing a request asks that the network cannot do, as [parameter, why], or null. Synod's
 * answer is one text that a quorum agreed on: no tool calls, no stop sequences, penalties, logit bias,
 * log-probabilities or structured output. These are refused with 400 UNSUPPORTED_PARAMETER rather than
 * silently dropped; the neutral values frameworks send by default (0, false, empty, `none`/`auto`
 * without tools, `{type: "text"}`) pass. Other members OpenAI defines (`user`, `metadata`, `store`,
 * `stream_options`, …) change nothing about the answer and are accepted.
 */
function unsupported(b: ChatInput): [string, string] | null {
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) {
    if (b[k] != null && b[k] !== 0) return [k, `${k} is not supported (only 0)`];
  }
  if (b.logprobs === true || (b.top_logprobs ?? 0) > 0) {
    return ['logprobs', 'log-probabilities are not supported: the answer is a quorum verdict'];
  }
  if (b.logit_bias != null && Object.keys(b.logit_bias).length > 0) {
    return ['logit_bias', 'logit_bias is not supported'];
  }
  if (b.stop != null && (typeof b.stop === 'string' ? b.stop !== '' : b.stop.length > 0)) {
    return ['stop', 'stop sequences are not supported'];
  }
  const calls = 'tools (function calling) are not supported: the network answers with text';
  if ((b.tools?.length ?? 0) > 0) return ['tools', calls];
  if ((b.functions?.length ?? 0) > 0) return ['functions', calls];
  for (const k of ['tool_choice', 'function_call'] as const) {
    if (b[k] != null && b[k] !== 'none' && b[k] !== 'auto') return [k, calls];
  }
  if (b.response_format != null && b.response_format.type !== 'text') {
    return ['response_format', `response_format ${b.response_format.type} is not supported, only text`];
  }
  for (const [i, m] of b.messages.entries()) {
    if (m.role === 'tool' || m.role === 'function' || 'tool_calls' in m || 'function_call' in m) {
      return [`messages.${i}`, calls];
    }
  }
  return null;
}

function toInferenceInput(raw: unknown): unknown {
  const r = ChatInputSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw edgeError(400, 'INVALID_INPUT', `${i?.path.join('.') || 'body'}: ${i?.message ?? 'invalid'}`, {
      issues: r.error.issues.map((x) => ({ path: x.path.join('.'), message: x.message })),
    });
  }
  const b = r.data;
  if ((b.n ?? 1) !== 1)
    throw edgeError(400, 'INVALID_INPUT', 'n must be 1: a quorum answers with one winner');
  const refused = unsupported(b);
  if (refused) {
    const [param, why] = refused;
    throw edgeError(400, 'UNSUPPORTED_PARAMETER', why, { issues: [{ path: param, message: why }] });
  }
  const empty = b.messages.findIndex((m) => m.content == null);
  if (empty >= 0) {
    const path = `messages.${empty}.content`;
    throw edgeError(400, 'INVALID_INPUT', `${path}: a message needs text content`, {
      issues: [{ path, message: 'a message needs text content' }],
    });
  }
  const models = b.model === 'synod' ? undefined : b.model.split(',').map((m) => m.trim());
  const params: Record<string, number> = {};
  if (b.temperature != null) params['temperature'] = b.temperature;
  const maxTokens = b.max_completion_tokens ?? b.max_tokens;
  if (maxTokens != null) params['maxTokens'] = maxTokens;
  if (b.seed != null) params['seed'] = b.seed;
  if (b.top_p != null) params['topP'] = b.top_p;
  return {
    messages: b.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join(''),
    })),
    ...(models ? { models } : {}),
    ...(Object.keys(params).length > 0 ? { params } : {}),
    ...(b.synod?.frame ? { frame: b.synod.frame } : {}),
    ...(b.synod?.embeddingModel ? { embeddingModel: b.synod.embeddingModel } : {}),
  };
}

const OPENAI_TYPE: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
};

export function openAiError(c: Context, e: unknown): Response {
  const h = toHttpError(e);
  const param = (h.details?.['issues'] as { path?: string }[] | undefined)?.[0]?.path ?? null;
  return c.json(
    {
      error: {
        message: h.message,
        type: OPENAI_TYPE[h.status] ?? (h.status >= 500 ? 'server_error' : 'invalid_request_error'),
        param,
        code: h.code,
        ...(h.details ? { details: h.details } : {}),
      },
    },
    h.status,
    h.headers,
  );
}

/** Wait until the request reaches a terminal status, or until `deadline`. */
async function awaitVerdict(deps: EdgeDeps, requestId: string, deadline: number): Promise<RequestDetail> {
  let wake: (() => void) | undefined;
  const unsubscribe = deps.network.subscribe(requestId, () => wake?.());
  try {
    for (;;) {
      const found = await findRequest(deps.store, deps.intake, requestId);
      if (!found) throw edgeError(404, 'NOT_FOUND', `no request ${requestId}`);
      if (found.kind === 'queued') {
        if (deps.now() >= deadline) {
          throw edgeError(504, 'TIMEOUT', `request ${requestId} is still queued for the network`, {
            requestId,
          });
        }
      } else {
        const d = found.detail;
        if (TERMINAL.has(d.status) || deps.now() >= deadline) return d;
      }
      await Promise.race([
        new Promise<void>((resolve) => {
          wake = resolve;
        }),
        deps.sleep(500),
      ]);
    }
  } finally {
    unsubscribe();
  }
}

function completionId(requestId: string): string {
  return `chatcmpl-${requestId.replace(/[^0-9a-zA-Z]/g, '').slice(0, 48)}`;
}

function completionBody(d: RequestDetail, model: string) {
  const view = requestView(d);
  const winner = d.verdict?.packet.body.verdict.winner ?? null;
  const content = winner?.output ?? '';
  const approxTokens = (s: string) => (s.length === 0 ? 0 : Math.ceil(s.length / 4));
  const promptText =
    d.request.body.prompt ?? (d.request.body.messages ?? []).map((m) => m.content).join('\n');
  return {
    id: completionId(d.requestId),
    object: 'chat.completion' as const,
    created: Math.floor(d.createdAt / 1000),
    model: winner?.model.id ?? model,
    system_fingerprint: winner ? `synod-${winner.model.fileHash.slice(0, 16)}` : null,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content, refusal: null },
        logprobs: null,
        finish_reason: 'stop' as const,
      },
    ],
    usage: {
      prompt_tokens: approxTokens(promptText),
      completion_tokens: approxTokens(content),
      total_tokens: approxTokens(promptText) + approxTokens(content),
    },
    synod: {
      requestId: d.requestId,
      status: d.status,
      verdict: view.verdict,
      verdictDigest: view.verdict?.verdictDigest ?? null,
      transcriptRoot: view.transcriptRoot,
      attestations: view.attestations,
      verify: view.links.verify,
    },
  };
}

function failure(d: RequestDetail): HttpError | null {
  if (d.status === 'verdict') return null;
  if (d.status === 'no-consensus') {
    return new HttpError(502, 'NO_CONSENSUS', 'the quorum did not agree on an answer', {
      requestId: d.requestId,
      verdict: requestView(d).verdict,
    });
  }
  if (d.status === 'expired' || d.status === 'failed') {
    return new HttpError(504, 'EXPIRED', `the request ${d.status}: ${d.error ?? 'no quorum in time'}`, {
      requestId: d.requestId,
      reason: d.error,
    });
  }
  return new HttpError(504, 'TIMEOUT', 'no verdict in time; poll the request for the outcome', {
    requestId: d.requestId,
    links: requestView(d).links,
  });
}

export function mountOpenAi(app: Hono, deps: EdgeDeps): void {
  const modelObject = (id: string) => ({ id, object: 'model' as const, created: 0, owned_by: 'synod' });
  app.get('/v1/models', async (c) => {
    const served = [...(await deps.network.servedModels())].sort();
    return c.json({ object: 'list', data: served.map(modelObject) });
  });

  // `client.models.retrieve(id)`: a served model, or OpenAI's 404 for an unknown one.
  app.get('/v1/models/:id', async (c) => {
    const id = c.req.param('id');
    if (!(await deps.network.servedModels()).has(id)) {
      return openAiError(c, edgeError(404, 'UNKNOWN_MODEL', `the model ${id.slice(0, 128)} is not served`));
    }
    return c.json(modelObject(id));
  });

  app.post('/v1/chat/completions', async (c) => {
    let stream = false;
    // As OpenAI: with stream_options.include_usage, one more chunk before [DONE], with the usage and no choices.
    let includeUsage = false;
    let model = 'synod';
    try {
      const s = await submit(c, deps, (raw) => {
        const input = toInferenceInput(raw);
        const r = raw as {
          stream?: boolean;
          model?: string;
          stream_options?: { include_usage?: unknown } | null;
        };
        stream = r.stream === true;
        includeUsage = r.stream_options?.include_usage === true;
        model = typeof r.model === 'string' ? r.model : model;
        return input;
      });
      // The request id (OpenAI's clients read it into `_request_id`) and the caller's quota, as headers
      // (the body is OpenAI's), on whatever answer follows: completion, stream or error.
      c.header('x-request-id', s.requestId);
      if (s.quota) for (const [name, value] of Object.entries(quotaHeaders(s.quota))) c.header(name, value);
      const f = s.body.frame;
      const deadline = deps.now() + f.maxTimeMs + f.revealWindowMs + deps.config.chatWaitSlackMs;
      if (!stream) {
        const d = await awaitVerdict(deps, s.requestId, deadline);
        const bad = failure(d);
        if (bad) return openAiError(c, bad);
        return c.json(completionBody(d, model));
      }
      return streamSSE(c, async (out) => {
        // The first chunk (the assistant's role) at once, as OpenAI does; then comment lines while
        // the quorum works, and the answer when the verdict is in.
        const id = completionId(s.requestId);
        const created = Math.floor(s.body.createdAt / 1000);
        await out.writeSSE({
          data: JSON.stringify({
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
          }),
        });
        const stopKeepAlive = keepAlive(out, deps.config.sseKeepAliveMs);
        let d: RequestDetail | null = null;
        let bad: HttpError | null;
        try {
          d = await awaitVerdict(deps, s.requestId, deadline);
          bad = failure(d);
        } catch (e) {
          // The wait itself failed (still queued at the deadline, the store gone): the same error event
          // as a failed verdict, so the stream always ends with [DONE].
          bad = toHttpError(e);
        } finally {
          stopKeepAlive();
        }
        if (bad || d === null) {
          const error = (bad ?? toHttpError(null)).body().error;
          await out.writeSSE({ data: JSON.stringify({ error: { ...error, type: 'server_error' } }) });
          await out.writeSSE({ data: '[DONE]' });
          return;
        }
        const body = completionBody(d, model);
        const base = {
          id: body.id,
          object: 'chat.completion.chunk',
          created: body.created,
          model: body.model,
        };
        const content = body.choices[0]?.message.content ?? '';
        // The verdict arrives whole; stream it in word-sized pieces so clients render progressively.
        for (const piece of content.match(/\S+\s*|\s+/g) ?? []) {
          await out.writeSSE({
            data: JSON.stringify({
              ...base,
              choices: [{ index: 0, delta: { content: piece }, finish_reason: null }],
            }),
          });
        }
        await out.writeSSE({
          data: JSON.stringify({
            ...base,
            choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
            synod: body.synod,
          }),
        });
        if (includeUsage) {
          await out.writeSSE({ data: JSON.stringify({ ...base, choices: [], usage: body.usage }) });
        }
        await out.writeSSE({ data: '[DONE]' });
      });
    } catch (e) {
      return openAiError(c, e);
    }
  });
}
