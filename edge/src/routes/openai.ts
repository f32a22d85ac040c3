import { FrameFieldsSchema, InferenceParamsSchema, LIMITS, MAX_SEED, selectReveals } from '@synod/shared';
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import * as z from 'zod';
import { edgeError, HttpError, toHttpError } from '../http/errors.ts';
import { logServerError } from '../http/log-server-error.ts';
import { quotaHeaders } from '../http/quota.ts';
import { keepAlive } from '../http/sse-keep-alive.ts';
import type { RequestDetail } from '../store/history-store.ts';
import { awaitingAttestations, findRequest, requestView, TERMINAL } from '../views.ts';
import type { EdgeDeps } from './deps.ts';
import { type SubmitOptions, submit } from './inference.ts';

/**
 * OpenAI-compatible surface, so the official `openai` client and agent frameworks work unchanged.
 * `model` names one model, or several joined by commas, or `synod` for the relay's default list; the
 * answer is the verdict's winner, and the verdict with its proof rides along in the `synod` field.
 * Errors use OpenAI's body `{ error: { message, type, param, code } }` with Synod's stable code (or
 * OpenAI's own where it has one, `OPENAI_CODES`, Synod's then in `details.code`).
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
                // Any typed part is read, so that a part other than text gets a precise refusal.
                z.array(z.object({ type: z.string(), text: z.string().optional() }).passthrough()).min(1),
              ])
              .nullish(),
          })
          .passthrough(),
      )
      // No bound on their number here: a conversation over the protocol's limits is answered as too long
      // for the context (`conversationOverLimits`), and the body's own limit bounds what is read.
      .min(1),
    temperature: z.number().nullish(),
    max_tokens: z.number().int().nullish(),
    max_completion_tokens: z.number().int().nullish(),
    seed: z.number().int().nullish(),
    top_p: z.number().nullish(),
    /** Not OpenAI's, but taken by most OpenAI-compatible servers: `params.topK` of POST /v1/inference. */
    top_k: z.number().int().nullish(),
    n: z.number().int().nullish(),
    stream: z.boolean().nullish(),
    // Read only to refuse what a quorum cannot honour (see `unsupported`); their neutral values pass.
    frequency_penalty: z.number().nullish(),
    repetition_penalty: z.number().nullish(),
    min_p: z.number().nullish(),
    typical_p: z.number().nullish(),
    top_a: z.number().nullish(),
    reasoning_effort: z.string().nullish(),
    verbosity: z.string().nullish(),
    web_search_options: z.unknown().optional(),
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
    modalities: z.array(z.string()).nullish(),
    audio: z.unknown().optional(),
    // How the answer is sent: `include_usage` is honoured, and OpenAI's other options of the stream (such
    // as `include_obfuscation`) change nothing about the answer.
    stream_options: z.object({ include_usage: z.boolean().nullish() }).passthrough().nullish(),
    // OpenAI's members that change nothing about the answer (bookkeeping, caching, routing; parallel tool
    // calls, as any tool is refused; a predicted output, which only speeds an answer up): accepted, and
    // not passed to the nodes.
    user: z.string().nullish(),
    metadata: z.record(z.string(), z.unknown()).nullish(),
    store: z.boolean().nullish(),
    service_tier: z.string().nullish(),
    prompt_cache_key: z.string().nullish(),
    prompt_cache_retention: z.string().nullish(),
    safety_identifier: z.string().nullish(),
    parallel_tool_calls: z.boolean().nullish(),
    prediction: z.unknown().optional(),
    /** Synod extension: a partial security frame and embedder, as in POST /v1/inference. */
    synod: z
      .strictObject({
        frame: z.record(z.string(), z.unknown()).optional(),
        embeddingModel: z.string().optional(),
      })
      .optional(),
  })
  // Any other member is refused, never dropped (see `unknownMember`): it may ask what Synod cannot do.
  .strict();
type ChatInput = z.infer<typeof ChatInputSchema>;

/** Sampling parameters of other OpenAI-compatible servers, each with the value that changes nothing. */
const NEUTRAL_SAMPLING = { repetition_penalty: 1, min_p: 0, typical_p: 1, top_a: 0 } as const;

/** The members `synod` takes, and the frame's fields (which go in `synod.frame`). */
const SYNOD_MEMBERS = ['frame', 'embeddingModel'];
const FRAME_FIELDS = Object.keys(FrameFieldsSchema.shape).filter((k) => k !== 'embeddingModel');

/**
 * A body's first member the chat route does not take, as [path, error], or null (a body that is not an
 * object is left to the schema). At the top level it is 400 UNSUPPORTED_PARAMETER, as OpenAI's members
 * Synod cannot honour are: a parameter of another server may change the answer (a sampler, a grammar),
 * so it is refused rather than dropped. In `synod`, Synod's own, it is 400 INVALID_INPUT as in POST
 * /v1/inference, and a frame field put there names where it goes (`synod.frame.quorum`).
 */
function unknownMember(raw: unknown): HttpError | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const name = Object.keys(raw).find((k) => !Object.hasOwn(ChatInputSchema.shape, k));
  if (name !== undefined) {
    const param = name.slice(0, 64);
    const why = `${param} is not a parameter Synod takes: it could change the answer, so it is refused rather than ignored`;
    return edgeError(
      400,
      'UNSUPPORTED_PARAMETER',
      why,
      { issues: [{ path: param, message: why }] },
      "send OpenAI's chat completion parameters (docs/http-api.md lists those honoured, refused and ignored), and Synod's own in synod",
    );
  }
  const synod = (raw as { synod?: unknown }).synod;
  if (typeof synod !== 'object' || synod === null || Array.isArray(synod)) return null;
  const inSynod = Object.keys(synod).find((k) => !SYNOD_MEMBERS.includes(k));
  if (inSynod === undefined) return null;
  const path = `synod.${inSynod.slice(0, 64)}`;
  const frameField = FRAME_FIELDS.includes(inSynod);
  const why = `synod takes frame and embeddingModel${frameField ? `; did you mean synod.frame.${inSynod}?` : ''}`;
  return edgeError(
    400,
    'INVALID_INPUT',
    `${path}: ${why}`,
    { issues: [{ path, message: why }] },
    `the security frame's fields go in synod.frame (${FRAME_FIELDS.join(', ')})`,
  );
}

/** The `model` that asks for the relay's default model list. */
export const SYNOD_MODEL = 'synod';

/**
 * The first thing a request asks that the network cannot do, as [parameter, why], or null. Synod's
 * answer is one text that a quorum agreed on, sampled by temperature, top_p, top_k and seed: no tool
 * calls, no stop sequences, penalties or other samplers, logit bias, log-probabilities, reasoning or
 * verbosity settings, web search or structured output. These are refused with 400
 * UNSUPPORTED_PARAMETER rather than silently dropped; the neutral values frameworks send by default (0,
 * false, empty, `none`/`auto` without tools, `{type: "text"}`, null) pass. The members of OpenAI's that
 * change nothing about the answer (`user`, `metadata`, `store`, …: see the schema) are accepted, and
 * any other member is refused (`unknownMember`).
 */
function unsupported(b: ChatInput): [string, string] | null {
  if ((b.n ?? 1) !== 1) return ['n', 'n must be 1: a quorum answers with one winner'];
  for (const [k, neutral] of Object.entries(NEUTRAL_SAMPLING) as [keyof typeof NEUTRAL_SAMPLING, number][]) {
    if (b[k] != null && b[k] !== neutral) {
      return [
        k,
        `${k} is not supported (only ${neutral}): the nodes sample by temperature, top_p, top_k and seed`,
      ];
    }
  }
  if (b.reasoning_effort != null) {
    return [
      'reasoning_effort',
      'reasoning_effort is not supported: the nodes run their model with no reasoning setting',
    ];
  }
  if (b.verbosity != null) return ['verbosity', "verbosity is not supported: the answer is the model's own"];
  if (b.web_search_options != null) {
    return [
      'web_search_options',
      'web_search_options is not supported: the nodes answer from their model alone',
    ];
  }
  if ((b.modalities ?? []).some((m) => m !== 'text')) return ['modalities', 'only text output is supported'];
  if (b.audio != null) return ['audio', 'only text output is supported'];
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) {
    if (b[k] != null && b[k] !== 0) return [k, `${k} is not supported (only 0)`];
  }
  const logprobs = 'log-probabilities are not supported: the answer is a quorum verdict';
  if (b.logprobs === true) return ['logprobs', logprobs];
  if ((b.top_logprobs ?? 0) > 0) return ['top_logprobs', logprobs];
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
    // An assistant message echoed back with `tool_calls: []` or `function_call: null` asked for nothing.
    const toolCalls = m['tool_calls'];
    const calledTools = Array.isArray(toolCalls) ? toolCalls.length > 0 : toolCalls != null;
    if (m.role === 'tool' || m.role === 'function' || calledTools || m['function_call'] != null) {
      return [`messages.${i}`, calls];
    }
    const j = Array.isArray(m.content) ? m.content.findIndex((p) => p.type !== 'text') : -1;
    const part = Array.isArray(m.content) ? m.content[j] : undefined;
    if (part !== undefined) {
      return [
        `messages.${i}.content.${j}`,
        `content parts of type ${part.type.slice(0, 64)} are not supported, only text`,
      ];
    }
  }
  return null;
}

/** 400 INVALID_INPUT about one member of the body, by its path. */
function invalid(path: string, why: string): never {
  throw edgeError(400, 'INVALID_INPUT', `${path}: ${why}`, { issues: [{ path, message: why }] });
}

/**
 * A conversation over the protocol's limits (`LIMITS`: at most `maxMessages` messages, `maxPromptChars`
 * characters in one, `maxMessagesChars` in all, whatever the model), as the chat route answers a
 * conversation longer than the model's context (`contextExceeded`): OpenAI's 400
 * `context_length_exceeded` about `messages`, which agent frameworks catch to drop earlier turns and
 * retry, its message in OpenAI's words (LangChain also knows it by "maximum context length"). Null
 * when it is within them. Nothing is stored or charged.
 */
export function conversationOverLimits(messages: readonly { content: string }[]): HttpError | null {
  const over = (
    limit: 'maxMessages' | 'maxPromptChars' | 'maxMessagesChars',
    what: string,
    yours: string,
    actual: number,
    extra: Record<string, number> = {},
  ) =>
    new HttpError(
      400,
      'CONTEXT_LENGTH_EXCEEDED',
      `Synod's maximum context length is ${LIMITS[limit]} ${what} (a limit of its protocol, whatever the model's context). However, ${yours}. Please reduce the length of the messages.`,
      { reason: 'PROTOCOL_LIMIT', limit, max: LIMITS[limit], actual, ...extra },
      `drop earlier turns of the conversation, or shorten its longest messages: Synod takes at most ${LIMITS.maxMessages} messages, ${LIMITS.maxPromptChars} characters in one and ${LIMITS.maxMessagesChars} in all; max_tokens does not change it`,
    );
  const n = messages.length;
  if (n > LIMITS.maxMessages) return over('maxMessages', 'messages', `you sent ${n} messages`, n);
  let total = 0;
  for (const [index, m] of messages.entries()) {
    const chars = m.content.length;
    if (chars > LIMITS.maxPromptChars) {
      const yours = `messages.${index} holds ${chars} characters`;
      return over('maxPromptChars', 'characters in a message', yours, chars, { index });
    }
    total += chars;
  }
  if (total > LIMITS.maxMessagesChars) {
    const yours = `your messages hold ${total} characters`;
    return over('maxMessagesChars', 'characters of messages in all', yours, total);
  }
  return null;
}

function toInferenceInput(raw: unknown): unknown {
  const unknown = unknownMember(raw);
  if (unknown) throw unknown;
  const r = ChatInputSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw edgeError(400, 'INVALID_INPUT', `${i?.path.join('.') || 'body'}: ${i?.message ?? 'invalid'}`, {
      issues: r.error.issues.map((x) => ({ path: x.path.join('.'), message: x.message })),
    });
  }
  const b = r.data;
  if (b.stream_options != null && b.stream !== true) {
    throw edgeError(400, 'INVALID_INPUT', 'stream_options is only allowed when stream is true', {
      issues: [{ path: 'stream_options', message: 'only allowed when stream is true' }],
    });
  }
  const refused = unsupported(b);
  if (refused) {
    const [param, why] = refused;
    throw edgeError(400, 'UNSUPPORTED_PARAMETER', why, { issues: [{ path: param, message: why }] });
  }
  const empty = b.messages.findIndex((m) => m.content == null);
  if (empty >= 0) invalid(`messages.${empty}.content`, 'a message needs text content');
  for (const [i, m] of b.messages.entries()) {
    const j = Array.isArray(m.content) ? m.content.findIndex((p) => typeof p.text !== 'string') : -1;
    if (j >= 0) invalid(`messages.${i}.content.${j}.text`, 'a text content part needs its text');
  }
  const models = b.model === SYNOD_MODEL ? undefined : b.model.split(',').map((m) => m.trim());
  if (models?.includes(SYNOD_MODEL)) {
    invalid(
      'model',
      `${SYNOD_MODEL} stands alone: it asks for the relay's default models, and is not a model to join with others; send "${SYNOD_MODEL}" alone, or name the models (GET /v1/models lists them)`,
    );
  }
  const params: Record<string, number> = {};
  if (b.temperature != null) params['temperature'] = b.temperature;
  const maxTokens = b.max_completion_tokens ?? b.max_tokens;
  if (maxTokens != null) params['maxTokens'] = maxTokens;
  // The seed is signed into the request, and every node of the quorum samples from it alike: 0 to
  // 2^32 - 2, as in POST /v1/inference. A negative one (-1 is "random" to some servers, as 2^32 - 1 is to
  // llama.cpp) is no seed to sample from.
  if (b.seed != null && (b.seed < 0 || b.seed > MAX_SEED)) {
    invalid(
      'seed',
      `seed must be an integer from 0 to ${MAX_SEED} (every node of the quorum samples from it alike); a negative seed does not ask for a random one here: leave seed out`,
    );
  }
  if (b.seed != null) params['seed'] = b.seed;
  if (b.top_p != null && (b.top_p < 0 || b.top_p > 1)) {
    invalid('top_p', 'top_p must be from 0 to 1 (0: the most likely token alone)');
  }
  if (b.top_p === 0) {
    // The smallest nucleus, as OpenAI takes `top_p: 0`: the most likely token alone, which is greedy
    // decoding whatever the temperature. Built as `temperature: 0` (greedy, which every engine decodes
    // alike, and what the signed request then says), as the protocol's topP is above 0. A temperature
    // out of range is left as sent, to be refused as such.
    const t = b.temperature;
    if (t == null || InferenceParamsSchema.shape.temperature.safeParse(t).success) params['temperature'] = 0;
  } else if (b.top_p != null) {
    params['topP'] = b.top_p;
  }
  // 0 and -1 are "off" to the servers that take top_k: no top-k, as when it is left out.
  if (b.top_k != null && b.top_k !== 0 && b.top_k !== -1) params['topK'] = b.top_k;
  const messages = b.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text ?? '').join(''),
  }));
  const tooLong = conversationOverLimits(messages);
  if (tooLong) throw tooLong;
  return {
    messages,
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

/**
 * Synod's codes OpenAI has a name of its own for, which clients and agent frameworks match: a conversation
 * too long for the model (`context_length_exceeded`, which they catch to trim it and retry; about
 * `messages`) and a spent quota (`insufficient_quota`, as OpenAI answers a 429 it will not lift by
 * waiting a little: LangChain fails such a call at once instead of retrying it). The error then says
 * OpenAI's `type` and `code`, and Synod's stable code in `details.code`.
 */
const OPENAI_CODES: Record<string, { type?: string; code: string; param?: string }> = {
  CONTEXT_LENGTH_EXCEEDED: { code: 'context_length_exceeded', param: 'messages' },
  QUOTA_EXCEEDED: { type: 'insufficient_quota', code: 'insufficient_quota' },
};

/**
 * Codes a retry of the same call can get past: the relay stored and charged nothing (or cannot say it
 * did, for STORE_UNAVAILABLE). Every other error is final for that call, and so is any error once the
 * request's admission started without an Idempotency-Key (a retry would be a new request, or, where the
 * admission's outcome is unknown, may be: a lost commit answer); they say so with
 * `x-should-retry: false`, which the official clients obey: their default retries of any 5xx, 409 or
 * 429 would otherwise send a request the relay already took (and charged) again as a new one.
 * BODY_TIMEOUT (408: the body arrived too slowly) is refused before anything is read or stored: the same
 * call sent again may well arrive in time.
 */
const RETRYABLE = new Set([
  'BODY_TIMEOUT',
  'RATE_LIMITED',
  'QUEUE_FULL',
  'QUORUM_UNAVAILABLE',
  'NETWORK_UNAVAILABLE',
  'STORE_UNAVAILABLE',
  'INTERNAL',
]);

/** A path of the inference input named as the caller sent it in the chat completion (`openAiError`). */
export type ParamNames = (path: string) => string;

const SAME: ParamNames = (path) => path;

/**
 * Names of the chat completion's members for the inference input's paths (`toInferenceInput` renames
 * them): `params.maxTokens` is `max_tokens` or `max_completion_tokens`, whichever was sent, and so on.
 */
export function chatParamNames(maxTokensName: 'max_tokens' | 'max_completion_tokens'): ParamNames {
  const top: Record<string, string> = {
    'params.maxTokens': maxTokensName,
    'params.temperature': 'temperature',
    'params.topP': 'top_p',
    'params.topK': 'top_k',
    'params.seed': 'seed',
    models: 'model',
    embeddingModel: 'synod.embeddingModel',
  };
  return (path) => {
    if (path in top) return top[path] as string;
    if (path.startsWith('models.')) return 'model';
    if (path === 'frame' || path.startsWith('frame.')) return `synod.${path}`;
    return path;
  };
}

/**
 * The inference input's paths a hint names (`frame.quorum`, `params.maxTokens`, …), not after a dot or a
 * letter: a hint that names them as the chat completion does already (`synod.frame.quorum`) keeps them.
 */
const INPUT_PATH = /(?<![\w.])(?:frame\.[A-Za-z]+|params\.[A-Za-z]+|embeddingModel)\b/g;

/** A hint's text with the inference input's paths in it renamed to the caller's names for them. */
export function renamePaths(text: string, names: ParamNames): string {
  return names === SAME ? text : text.replace(INPUT_PATH, (path) => names(path));
}

/**
 * OpenAI's error body for an error, its status and headers, with the inference input's paths renamed.
 * `final`: the request's admission started (it is stored, or may be) and no Idempotency-Key would make a
 * retry replay it, so a retry could be a new request, charged again; even a retryable code then says
 * `x-should-retry: false`.
 */
function openAiErrorParts(e: unknown, names: ParamNames, final = false) {
  const h = toHttpError(e);
  const issues = (h.details?.['issues'] as { path?: string }[] | undefined)?.map((i) =>
    typeof i.path === 'string' ? { ...i, path: names(i.path) } : i,
  );
  const first = (h.details?.['issues'] as { path?: string }[] | undefined)?.[0]?.path;
  // An issue with the body as a whole (not an object) has the empty path: OpenAI's `param` is then null.
  const param = issues?.[0]?.path || null;
  // The message leads with the path it is about ("params.maxTokens: Too big…"): the caller's name for it.
  const message =
    first !== undefined && param !== null && h.message.startsWith(`${first}:`)
      ? `${param}${h.message.slice(first.length)}`
      : h.message;
  // An unknown model is OpenAI's 404 (`model_not_found`), which clients and frameworks know by its status.
  const status = h.code === 'UNKNOWN_MODEL' ? 404 : h.status;
  const own = OPENAI_CODES[h.code];
  const details =
    h.details || own
      ? { ...h.details, ...(issues ? { issues } : {}), ...(own ? { code: h.code } : {}) }
      : undefined;
  const hint = h.hint === undefined ? undefined : renamePaths(h.hint, names);
  return {
    status,
    body: {
      error: {
        message,
        type: own?.type ?? OPENAI_TYPE[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'),
        param: own?.param ?? param,
        code: own?.code ?? h.code,
        ...(details ? { details } : {}),
        ...(hint ? { hint } : {}),
      },
    },
    headers: { ...h.headers, ...(RETRYABLE.has(h.code) && !final ? {} : { 'x-should-retry': 'false' }) },
  };
}

export function openAiError(c: Context, e: unknown, names: ParamNames = SAME, final = false): Response {
  const { status, body, headers } = openAiErrorParts(e, names, final);
  return c.json(body, status, headers);
}

/** The caller went away (its connection closed) while its completion waited: nobody reads the answer. */
class CallerGone extends Error {
  override readonly name = 'CallerGone';
}

/**
 * How long an answer waits, once the verdict is in, for the seal members' attestations of it (signed as
 * each hears the verdict, usually within tens of milliseconds), so that `synod.attestations` holds them.
 */
export const CHAT_ATTESTATION_WAIT_MS = 1_000;

/**
 * Wait until the request reaches a terminal status, or until `deadline`; or until `gone` is aborted (the
 * caller's connection closed), which ends the wait with `CallerGone` rather than poll the history for
 * an answer nobody will read. With `attestationWaitMs`, a verdict is returned once its seal members have
 * all attested it, or that long after it, whichever comes first.
 */
async function awaitVerdict(
  deps: EdgeDeps,
  requestId: string,
  deadline: number,
  gone: AbortSignal,
  attestationWaitMs = 0,
): Promise<RequestDetail> {
  let endBy: number | null = null;
  let wake: (() => void) | undefined;
  const unsubscribe = deps.network.subscribe(requestId, () => wake?.());
  const onGone = () => wake?.();
  gone.addEventListener('abort', onGone);
  try {
    for (;;) {
      if (gone.aborted) throw new CallerGone('the caller went away');
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
        if (deps.now() >= deadline) return d;
        if (TERMINAL.has(d.status)) {
          endBy ??= deps.now() + attestationWaitMs;
          if (deps.now() >= endBy || !awaitingAttestations(requestView(d))) return d;
        }
      }
      const until = Math.min(deadline, endBy ?? deadline);
      await Promise.race([
        new Promise<void>((resolve) => {
          wake = resolve;
        }),
        // Polled every 500 ms, and never past the deadline (a stream's short hold included).
        deps.sleep(Math.max(0, Math.min(500, until - deps.now()))),
      ]);
    }
  } finally {
    gone.removeEventListener('abort', onGone);
    unsubscribe();
  }
}

/**
 * The completion's `id`: `chatcmpl-` and the whole Synod request id. Frameworks that drop the `synod`
 * member and the headers (LangChain's `AIMessage.id`, the AI SDK's `response.id`) keep this id, so it
 * must name the request in full for the caller to look it up and verify it (`/v1/verify/<id>`).
 */
function completionId(requestId: string): string {
  return `chatcmpl-${requestId}`;
}

/**
 * The reveal the verdict counted for its winner (`selectReveals`, the verdict's own rule), or undefined:
 * what it says beside its output (`finishReason`, `usage`) is signed but not committed to, so only that
 * reveal's counts.
 */
function winnerReveal(d: RequestDetail): RequestDetail['reveals'][number] | undefined {
  const verdict = d.verdict?.packet.body.verdict;
  const winner = verdict?.winner;
  if (!verdict || !winner || !d.seal) return undefined;
  const cited = new Set(verdict.rejected.map((r) => r.revealId));
  const chosen = selectReveals(verdict, { id: d.requestPacketId, packet: d.request }, d.seal, d.reveals);
  return chosen?.reveals.find((r) => r.packet.from === winner.nodeId && !cited.has(r.id));
}

/** OpenAI's finish_reason: `length` when the winner's reveal says its output was cut at maxTokens. */
function finishReason(revealed: RequestDetail['reveals'][number] | undefined): 'stop' | 'length' {
  return revealed?.packet.body.finishReason === 'length' ? 'length' : 'stop';
}

/**
 * OpenAI's usage: the token counts the winner's engine revealed (`usage`), or, from a node that does not
 * reveal them, an estimate of a token per 4 characters.
 */
function usageOf(d: RequestDetail, revealed: RequestDetail['reveals'][number] | undefined, content: string) {
  const counted = revealed?.packet.body.usage;
  if (counted !== undefined) {
    return {
      prompt_tokens: counted.promptTokens,
      completion_tokens: counted.completionTokens,
      total_tokens: counted.promptTokens + counted.completionTokens,
    };
  }
  const approxTokens = (s: string) => (s.length === 0 ? 0 : Math.ceil(s.length / 4));
  const promptText =
    d.request.body.prompt ?? (d.request.body.messages ?? []).map((m) => m.content).join('\n');
  return {
    prompt_tokens: approxTokens(promptText),
    completion_tokens: approxTokens(content),
    total_tokens: approxTokens(promptText) + approxTokens(content),
  };
}

function completionBody(d: RequestDetail, model: string) {
  const view = requestView(d);
  const winner = d.verdict?.packet.body.verdict.winner ?? null;
  const content = winner?.output ?? '';
  const revealed = winnerReveal(d);
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
        finish_reason: finishReason(revealed),
      },
    ],
    usage: usageOf(d, revealed, content),
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

/**
 * What a request that expired short of its quorum can tell its caller: how many nodes committed, and how
 * many declined it (too few, or too few proven, to end it early). A node takes no part in a request it
 * cannot finish in time by its own estimate, and says nothing of it to the network: it is busy, or the
 * request asks more output (`params.maxTokens`) than it can write within `frame.maxTimeMs`. With no
 * commit at all, the second is as likely as the first, and said first. The input's paths are named as
 * the caller sent them where the hint is answered (`renamePaths`).
 */
export function quorumNotMetHint(d: Pick<RequestDetail, 'commits' | 'request' | 'declines'>): string {
  const n = d.commits.length;
  const declined = d.declines.length;
  const { frame, params } = d.request.body;
  const declines =
    declined === 0
      ? ''
      : ` and ${declined} declined it (longer than their model's context: see the request's declines)`;
  const why = `nodes take no part in a request they cannot finish in time, by their own estimate of writing up to params.maxTokens (${params.maxTokens}) tokens within frame.maxTimeMs (${frame.maxTimeMs} ms), or while they are busy`;
  const longer = 'lower params.maxTokens or raise frame.maxTimeMs';
  const todo =
    n === 0
      ? `${longer}, retry, shorten the prompt, or ask a smaller quorum (frame.quorum)`
      : `retry, ${longer}, shorten the prompt, or ask a smaller quorum (frame.quorum)`;
  return `${n} node${n === 1 ? '' : 's'} committed of the quorum of ${frame.quorum} asked${declines}: ${why}; ${todo}`;
}

/**
 * A request the nodes declined as longer than their models' context (`DECLINED`): OpenAI's 400
 * `context_length_exceeded`, which clients and agent frameworks know (to trim a conversation and retry).
 * Said by the decline closest to fitting (the largest context); the declines ride along in `details`.
 * Any key can sign a decline: where some come from nodes the relay vouches for (`vouched`: proven or
 * trusted), only theirs are quoted and counted, so a stranger's made-up numbers are not repeated.
 */
export function contextExceeded(
  d: Pick<RequestDetail, 'requestId' | 'declines' | 'request'>,
  vouched: (nodeId: string) => boolean = () => false,
): HttpError {
  const all = d.declines
    .map((x) => ({ nodeId: x.packet.from, ...x.packet.body }))
    .filter((x) => x.reason === 'context-exceeded');
  const byVouched = all.filter((x) => vouched(x.nodeId));
  const declines = byVouched.length > 0 ? byVouched : all;
  const closest = declines.reduce<(typeof declines)[number] | undefined>(
    (best, x) => (best === undefined || x.contextTokens > best.contextTokens ? x : best),
    undefined,
  );
  const what = d.request.body.messages === undefined ? 'prompt' : 'messages';
  const message =
    closest === undefined
      ? `the nodes declined the request: its ${what === 'prompt' ? 'prompt does' : 'messages do'} not fit the model's context`
      : `This model's maximum context length is ${closest.contextTokens} tokens. However, your ${what} resulted in ${closest.promptTokens} tokens (${closest.model.id}, as ${declines.length} node${declines.length === 1 ? '' : 's'} said). Please reduce the length of the ${what}.`;
  return new HttpError(
    400,
    'CONTEXT_LENGTH_EXCEEDED',
    message,
    {
      requestId: d.requestId,
      reason: 'DECLINED',
      declines: declines.map((x) => ({
        nodeId: x.nodeId,
        model: x.model,
        promptTokens: x.promptTokens,
        contextTokens: x.contextTokens,
      })),
    },
    `shorten the ${what} (drop earlier turns of a conversation) or ask a model with a larger context; max_tokens does not change it`,
  );
}

function failure(d: RequestDetail, vouched?: (nodeId: string) => boolean): HttpError | null {
  if (d.status === 'verdict') return null;
  if (d.status === 'no-consensus') {
    return new HttpError(502, 'NO_CONSENSUS', 'the quorum did not agree on an answer', {
      requestId: d.requestId,
      verdict: requestView(d).verdict,
    });
  }
  if (d.status === 'expired' && d.error === 'DECLINED') return contextExceeded(d, vouched);
  if (d.status === 'expired' || d.status === 'failed') {
    return new HttpError(
      504,
      'EXPIRED',
      `the request ${d.status}: ${d.error ?? 'no quorum in time'}`,
      { requestId: d.requestId, reason: d.error },
      d.error === 'QUORUM_NOT_MET' ? quorumNotMetHint(d) : undefined,
    );
  }
  return new HttpError(504, 'TIMEOUT', 'no verdict in time; poll the request for the outcome', {
    requestId: d.requestId,
    links: requestView(d).links,
  });
}

/** How long a streamed completion's 200 waits for an early end (see the stream's answer). */
export const STREAM_HOLD_MS = 1_000;

/** Whether the relay vouches for a node (proven or trusted), where its network can say. */
function vouchedBy(deps: EdgeDeps): ((nodeId: string) => boolean) | undefined {
  const network = deps.network;
  return network.vouchedFor === undefined ? undefined : (nodeId) => network.vouchedFor?.(nodeId) ?? false;
}

export function mountOpenAi(app: Hono, deps: EdgeDeps): void {
  const modelObject = (id: string) => ({ id, object: 'model' as const, created: 0, owned_by: 'synod' });
  // The served models, then `synod` (the relay's default list: what `model: "synod"` asks for), so a
  // framework that checks a model name against this list takes it. A network that cannot say what it
  // serves (an edge relay's gateway out of reach) is OpenAI's error body too, as on the chat route.
  app.get('/v1/models', async (c) => {
    try {
      const served = [...(await deps.network.servedModels())].sort();
      return c.json({ object: 'list', data: [...served, SYNOD_MODEL].map(modelObject) });
    } catch (e) {
      return openAiError(c, e);
    }
  });

  // `client.models.retrieve(id)`: a served model or `synod`, or OpenAI's 404 for an unknown one.
  app.get('/v1/models/:id', async (c) => {
    const id = c.req.param('id');
    try {
      if (id !== SYNOD_MODEL && !(await deps.network.servedModels()).has(id)) {
        throw edgeError(404, 'UNKNOWN_MODEL', `the model ${id.slice(0, 128)} is not served`);
      }
      return c.json(modelObject(id));
    } catch (e) {
      return openAiError(c, e);
    }
  });

  app.post('/v1/chat/completions', async (c) => {
    let stream = false;
    // As OpenAI: with stream_options.include_usage, one more chunk before [DONE], with the usage and no choices.
    let includeUsage = false;
    let model = SYNOD_MODEL;
    let names = SAME;
    // Once the request's admission has started, a retry may make a new one unless it carries what
    // replays it: an Idempotency-Key, or for a signed request its signature (see `submit`). That holds
    // for an admission whose outcome is unknown (a lost commit answer, 503 STORE_UNAVAILABLE: the request
    // may be stored) as much as for one that was taken.
    let unkeyedAdmission = false;
    const options: SubmitOptions = {
      onAdmitting: (keyed) => {
        unkeyedAdmission = !keyed;
      },
      // A retry of the same conversation replays it, streamed or not, whatever members Synod ignores.
      keyedBy: 'input',
    };
    try {
      const s = await submit(
        c,
        deps,
        (raw) => {
          // Read before validation (which refuses a body that is not an object, `null` too).
          const r = (typeof raw === 'object' && raw !== null ? raw : {}) as {
            stream?: boolean;
            model?: string;
            stream_options?: { include_usage?: unknown } | null;
            max_completion_tokens?: unknown;
          };
          names = chatParamNames(r.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens');
          stream = r.stream === true;
          includeUsage = r.stream_options?.include_usage === true;
          model = typeof r.model === 'string' ? r.model : model;
          return toInferenceInput(raw);
        },
        options,
      );
      // The request id (OpenAI's clients read it into `_request_id`) and the caller's quota, as headers
      // (the body is OpenAI's), on whatever answer follows: completion, stream or error.
      c.header('x-request-id', s.requestId);
      if (s.quota) for (const [name, value] of Object.entries(quotaHeaders(s.quota))) c.header(name, value);
      const f = s.body.frame;
      const deadline = deps.now() + f.maxTimeMs + f.revealWindowMs + deps.config.chatWaitSlackMs;
      if (!stream) {
        // The request's signal is aborted when the caller's connection closes (Bun.serve, workerd).
        const d = await awaitVerdict(deps, s.requestId, deadline, c.req.raw.signal, CHAT_ATTESTATION_WAIT_MS);
        const bad = failure(d, vouchedBy(deps));
        if (bad) return openAiError(c, bad, names);
        return c.json(completionBody(d, model));
      }
      // A request the nodes decline (a prompt longer than the context) ends within a fraction of a second:
      // the stream's 200 is held that long (`STREAM_HOLD_MS`), so such an end, or any failure as early, is
      // OpenAI's error answer, as without `stream` (agents trim a conversation on a 400
      // context_length_exceeded), not an error event after a 200. Nothing is lost by the wait: the
      // answer's text is sent whole once the verdict is in.
      const early = await awaitVerdict(
        deps,
        s.requestId,
        // Never longer than the keep-alive interval: a stream is not left silent past it.
        Math.min(deadline, deps.now() + Math.min(STREAM_HOLD_MS, deps.config.sseKeepAliveMs)),
        c.req.raw.signal,
      ).catch(() => null);
      const failedEarly =
        early !== null && TERMINAL.has(early.status) ? failure(early, vouchedBy(deps)) : null;
      if (failedEarly) return openAiError(c, failedEarly, names);
      // Every chunk carries the same `created`, as OpenAI's do: the request's own (for a replay, the
      // stored request's, not the body just built), as a non-streamed completion says it.
      const found = s.replayed ? await findRequest(deps.store, deps.intake, s.requestId) : null;
      const createdAt =
        found?.kind === 'stored'
          ? found.detail.createdAt
          : found?.kind === 'queued'
            ? found.queued.createdAt
            : s.body.createdAt;
      const created = Math.floor(createdAt / 1000);
      return streamSSE(c, async (out) => {
        // The first chunk (the assistant's role) at once, as OpenAI does; then comment lines while
        // the quorum works, and the answer when the verdict is in. Every chunk names the model as asked
        // (the first is sent before the quorum's winner is known); the winner's is in `synod.verdict`.
        const id = completionId(s.requestId);
        // With include_usage, every chunk but the last says `usage: null`, as OpenAI's do.
        const noUsage = includeUsage ? { usage: null } : {};
        await out.writeSSE({
          data: JSON.stringify({
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            system_fingerprint: null,
            choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
            ...noUsage,
          }),
        });
        const stopKeepAlive = keepAlive(out, deps.config.sseKeepAliveMs);
        const gone = new AbortController();
        out.onAbort(() => gone.abort());
        let d: RequestDetail | null = null;
        let bad: HttpError | null;
        try {
          d = await awaitVerdict(deps, s.requestId, deadline, gone.signal, CHAT_ATTESTATION_WAIT_MS);
          bad = failure(d, vouchedBy(deps));
        } catch (e) {
          if (e instanceof CallerGone) return;
          // The wait itself failed (still queued at the deadline, the store gone): the same error event
          // as a failed verdict, so the stream always ends with [DONE].
          if (deps.serverErrors) logServerError(c, e, deps.serverErrors);
          bad = toHttpError(e);
        } finally {
          stopKeepAlive();
        }
        if (bad || d === null) {
          // OpenAI's error body, as a non-streamed completion would have answered it.
          const { body } = openAiErrorParts(bad ?? toHttpError(null), names);
          await out.writeSSE({ data: JSON.stringify(body) });
          await out.writeSSE({ data: '[DONE]' });
          return;
        }
        const body = completionBody(d, model);
        const base = {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          system_fingerprint: body.system_fingerprint,
        };
        const content = body.choices[0]?.message.content ?? '';
        // The verdict arrives whole; stream it in word-sized pieces so clients render progressively.
        for (const piece of content.match(/\S+\s*|\s+/g) ?? []) {
          await out.writeSSE({
            data: JSON.stringify({
              ...base,
              choices: [{ index: 0, delta: { content: piece }, finish_reason: null }],
              ...noUsage,
            }),
          });
        }
        await out.writeSSE({
          data: JSON.stringify({
            ...base,
            choices: [{ index: 0, delta: {}, finish_reason: body.choices[0]?.finish_reason ?? 'stop' }],
            synod: body.synod,
            ...noUsage,
          }),
        });
        if (includeUsage) {
          await out.writeSSE({ data: JSON.stringify({ ...base, choices: [], usage: body.usage }) });
        }
        await out.writeSSE({ data: '[DONE]' });
      });
    } catch (e) {
      // Nobody reads this answer: 499, nginx's "client closed request", so metrics do not count a 5xx.
      if (e instanceof CallerGone) return new Response(null, { status: 499 });
      if (deps.serverErrors) logServerError(c, e, deps.serverErrors);
      return openAiError(c, e, names, unkeyedAdmission);
    }
  });
}
