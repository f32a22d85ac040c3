/**
 * The relay's OpenAPI 3.1 document, served at `GET /openapi.json`, so agents can generate clients and
 * check calls against it. Request bodies come from the very zod schemas the routes validate with
 * (`z.toJSONSchema`), so they cannot drift; so do the protocol objects answers carry (verdicts, frames,
 * packets). The views around them are described by shape, every member the relay always sends required.
 * Two tests hold the document to the app: every public route is in it, and nothing else (app.test.ts);
 * and every answer the relay gives, good or bad, is one it declares (openapi-conformance.test.ts).
 */
import {
  CHAIN_REQUEST_ID_RE,
  ChatMessageSchema,
  DECLINE_REASONS,
  EnvelopeSchema,
  ERROR_CODES,
  FrameSchema,
  HASH_HEX_RE,
  InferenceParamsSchema,
  ModelRefSchema,
  OriginSchema,
  ReembeddingClaimSchema,
  RevealUsageSchema,
  SealMemberSchema,
  VerdictSchema,
} from '@synod/shared';
import { CHAIN_REQUEST_STATUSES, ORIGIN_KINDS, REQUEST_STATUSES } from '@synod/shared/history';
import * as z from 'zod';
import { EDGE_ERROR_CODES } from './http/errors.ts';
import { InferenceInputSchema } from './inference-input.ts';
import { ChatInputSchema } from './routes/openai.ts';

type Json = Record<string, unknown>;

/** A zod schema as JSON Schema: what a request may send (`input`), or what an answer holds (`output`). */
const schemaOf = (s: z.ZodType, io: 'input' | 'output' = 'input'): Json => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
  return rest;
};

/** A whole-string pattern's body, without its `^…$` anchors, to join with others. */
const unanchored = (re: RegExp): string => re.source.replace(/^\^/, '').replace(/\$$/, '');
const HEX64 = { type: 'string', pattern: HASH_HEX_RE.source };
/** The protocol's own patterns (`RequestIdSchema`), not a copy of them. */
export const REQUEST_ID_PATTERN = `^(?:${unanchored(HASH_HEX_RE)}|${unanchored(CHAIN_REQUEST_ID_RE)})$`;
const REQUEST_ID = {
  type: 'string',
  description: 'A content request id (64 hex digits), or a chain request `<chainId>:<oracle>:<requestNo>`',
  pattern: REQUEST_ID_PATTERN,
};
const nullable = (schema: Json): Json => ({ anyOf: [schema, { type: 'null' }] });
/** A schema of `components.schemas` (named there, so a generated client names its type). */
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const STRING_OR_NULL = { type: ['string', 'null'] };
const HEX64_OR_NULL = nullable(HEX64);
/** A digest a caller expects: 64 hex digits in any case, `0x` optional (as a chain event shows it); null for none. */
const EXPECTED_DIGEST = {
  type: ['string', 'null'],
  pattern: '^(0x)?[0-9a-fA-F]{64}$',
  description: '64 hex digits, 0x optional, any case; null for none',
};
const TIME = { type: 'integer', description: 'milliseconds since the Unix epoch' };
/** An object whose members are all sent, every time. */
const object = (properties: Record<string, Json>, description?: string): Json => ({
  type: 'object',
  ...(description ? { description } : {}),
  required: Object.keys(properties),
  properties,
});

/** `schema` (an `object`) with more properties, not required. */
const withOptional = (schema: Json, properties: Record<string, Json>): Json => {
  const o = schema as { properties: Record<string, Json> };
  return { ...o, properties: { ...o.properties, ...properties } };
};

const ERROR_DETAIL = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', enum: [...new Set([...EDGE_ERROR_CODES, ...ERROR_CODES])] },
    message: { type: 'string' },
    details: { type: 'object' },
    hint: { type: 'string' },
  },
};
const ERROR_BODY = object({ error: ref('ErrorDetail') });
const OPENAI_ERROR_BODY = object({
  error: {
    type: 'object',
    required: ['message', 'type', 'param', 'code'],
    properties: {
      message: { type: 'string' },
      type: { type: 'string' },
      param: STRING_OR_NULL,
      code: {
        type: 'string',
        description:
          "Synod's stable error code, or OpenAI's own where it has one (context_length_exceeded, insufficient_quota), Synod's then in details.code",
      },
      details: { type: 'object' },
      hint: { type: 'string', description: 'what to do about it, naming parameters as the caller sent them' },
    },
  },
});

const json = (schema: Json, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const header = (description: string, required = false) => ({
  description,
  ...(required ? { required: true } : {}),
  schema: { type: 'integer', minimum: 0 },
});
const QUOTA_STANDING = {
  type: 'object',
  description: "where the caller's daily quota stands after this request",
  required: ['limit', 'remaining', 'resetsInSeconds'],
  properties: {
    limit: { type: 'integer', description: 'requests a day' },
    remaining: { type: 'integer', description: 'what is left of it today' },
    resetsInSeconds: { type: 'integer', description: 'seconds until the next UTC day' },
  },
};
const QUOTA_HEADERS = {
  'x-synod-quota-limit': header('requests a day this caller may submit'),
  'x-synod-quota-remaining': header('what is left of it today, after this request'),
  'x-synod-quota-reset': header('seconds until the next UTC day, when the count starts again'),
};
const X_REQUEST_ID = {
  description: "the Synod request id (what OpenAI's clients show as `_request_id`)",
  schema: REQUEST_ID,
};
/** On a chat completion (whose body is OpenAI's): its request's id, and the caller's quota after it. */
const ACCEPTED_HEADERS = { 'x-request-id': X_REQUEST_ID, ...QUOTA_HEADERS };
/**
 * On the OpenAI-compatible routes' errors: `x-should-retry: false` when a retry of the same call cannot
 * succeed or would make a new request (the official clients obey it); and on the chat route, once the
 * request was admitted, its id and the caller's quota.
 */
const X_SHOULD_RETRY = {
  'x-should-retry': {
    description:
      "`false` when retrying the same call cannot help, or would submit (and charge) a new request; absent when a retry may succeed. OpenAI's clients obey it.",
    schema: { type: 'string', enum: ['false'] },
  },
};
const ADMITTED_ERROR_HEADERS = {
  ...X_SHOULD_RETRY,
  'x-request-id': {
    ...X_REQUEST_ID,
    description: `${X_REQUEST_ID.description}, once the request was admitted`,
  },
  ...QUOTA_HEADERS,
};
const RETRY_AFTER = {
  'retry-after': header(
    'seconds to wait: until the rate limit lets this caller in (RATE_LIMITED), until the next UTC day (QUOTA_EXCEEDED), or until the queue has room (QUEUE_FULL, a 503)',
  ),
};
const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "BAD_JSON, INVALID_INPUT, UNKNOWN_MODEL, UNSUPPORTED_PARAMETER, FRAME_OUT_OF_RANGE, or another protocol code; on /v1/chat/completions also context_length_exceeded (OpenAI's code: a conversation over the protocol's limits, 64 messages, 32,768 characters in one, 65,536 in all, details.reason PROTOCOL_LIMIT; or one the nodes declined, its messages longer than their model's context, details.declines)",
  401: 'UNAUTHENTICATED (no, a malformed or an unknown API key; a signed request that does not verify)',
  403: 'FORBIDDEN (a revoked API key)',
  404: 'NOT_FOUND (on the OpenAI-compatible routes also UNKNOWN_MODEL, as OpenAI answers an unknown model)',
  408: 'BODY_TIMEOUT: the body did not arrive in time; the connection is closed',
  409: 'IDEMPOTENCY_CONFLICT (an Idempotency-Key used with another body) or NO_VERDICT',
  413: 'BODY_TOO_LARGE, or PACKET_TOO_LARGE: the request packet the body makes would exceed 256 KiB (details.size, details.limit)',
  415: 'UNSUPPORTED_MEDIA_TYPE: send application/json, without a Content-Encoding (no compressed body is read)',
  429: "RATE_LIMITED (with QUOTA_EXCEEDED on the write routes: then also the x-synod-quota-* headers; on /v1/chat/completions a spent quota is OpenAI's insufficient_quota, type and code, with details.code QUOTA_EXCEEDED)",
  502: 'NO_CONSENSUS: the quorum did not agree on an answer',
  503: 'QUEUE_FULL (with Retry-After: the relay already holds its bound of requests waiting for the network; nothing was stored), QUORUM_UNAVAILABLE (with Retry-After: fewer nodes that could serve the request were heard from lately than its quorum; nothing was stored), NETWORK_UNAVAILABLE or STORE_UNAVAILABLE',
  504: 'TIMEOUT or EXPIRED: no verdict in time',
};
/**
 * Error responses by status, with the headers each may carry: Retry-After on every 429 and on a 503
 * QUEUE_FULL, and `more` (headers of the route's own) on all of them.
 */
const errors = (body: Json, codes: number[], more: Record<string, Json> = {}) =>
  Object.fromEntries(
    codes.map((c) => {
      const retryAfter =
        c === 429
          ? { 'retry-after': { ...RETRY_AFTER['retry-after'], required: true } }
          : c === 503
            ? RETRY_AFTER
            : {};
      const headers = { ...retryAfter, ...more };
      return [
        String(c),
        {
          ...json(body, ERROR_DESCRIPTIONS[c] ?? 'an error, with a stable code'),
          ...(Object.keys(headers).length > 0 ? { headers } : {}),
        },
      ];
    }),
  );

/** A transcript as a caller sends it to the verifier (each packet is checked there, not here). */
const TRANSCRIPT = {
  type: 'object',
  description: 'Every signed packet of one request: request, commits, seal, reveals (docs/protocol.md)',
  required: ['v', 'requestId', 'packets'],
  properties: {
    v: { const: 1 },
    requestId: REQUEST_ID,
    packets: { type: 'array', items: { type: 'object' } },
  },
};
/** A signed packet as the relay hands it over: its body is the packet type's (docs/protocol.md). */
const PACKET = schemaOf(EnvelopeSchema, 'output');
const STORED_TRANSCRIPT = object(
  { v: { const: 1 }, requestId: REQUEST_ID, packets: { type: 'array', items: ref('Packet') } },
  TRANSCRIPT.description,
);
const VERDICT = schemaOf(VerdictSchema, 'output');
const VERDICT_CLAIM = schemaOf(ReembeddingClaimSchema, 'input');
/** A verdict as a view shows it: the verdict packet's id, digest and transcript root, and the verdict. */
const VERDICT_VIEW = (() => {
  const properties = {
    packetId: HEX64,
    verdictDigest: HEX64,
    transcriptRoot: HEX64,
    ...(VERDICT['properties'] as Json),
  };
  // Every member but those the verdict may leave out (`reembedded`: only when it has claims).
  const optional = Object.keys(VERDICT['properties'] as Json).filter(
    (k) => !(VERDICT['required'] as string[]).includes(k),
  );
  return { ...VERDICT, required: Object.keys(properties).filter((k) => !optional.includes(k)), properties };
})();
const ATTESTATION_VIEW = object({
  packetId: HEX64,
  nodeId: HEX64,
  verdictDigest: HEX64,
  agrees: { type: 'boolean', description: 'whether it attests the verdict the relay published' },
  createdAt: TIME,
});
const LINKS = object({ self: { type: 'string' }, events: { type: 'string' }, verify: { type: 'string' } });
const STATUS = { type: 'string', enum: ['queued', ...REQUEST_STATUSES] };

const ACCEPTED = object({
  requestId: REQUEST_ID,
  status: { const: 'queued' },
  replayed: { const: false },
  links: ref('Links'),
  quota: ref('QuotaStanding'),
});
const REPLAYED = object({
  requestId: REQUEST_ID,
  status: STATUS,
  replayed: { const: true },
  links: ref('Links'),
});
const REQUEST_SUMMARY = {
  type: 'object',
  description: 'what was asked (`prompt` or `messages`), under which frame, and the request packet’s id',
  required: ['packetId', 'acceptedModels', 'params', 'frame', 'origin'],
  properties: {
    packetId: HEX64,
    acceptedModels: { type: 'array', items: { type: 'string' } },
    params: schemaOf(InferenceParamsSchema, 'output'),
    frame: schemaOf(FrameSchema, 'output'),
    origin: schemaOf(OriginSchema, 'output'),
    prompt: { type: 'string' },
    messages: { type: 'array', items: schemaOf(ChatMessageSchema, 'output') },
  },
};
/** A chain request's record of its settlement (`chain`: only on requests read from the chain). */
const CHAIN_RECORD = object(
  {
    status: { type: 'string', enum: [...CHAIN_REQUEST_STATUSES] },
    txHash: { type: 'string', description: "the LLMRequested event's transaction" },
    blockNumber: { type: 'integer' },
    settlementTx: {
      ...STRING_OR_NULL,
      description: 'the fulfil or refund transaction',
    },
    refundReason: {
      ...STRING_OR_NULL,
      description:
        "a refund's reason as the oracle's LLMRefunded event of settlementTx gives it (a stable code such as DECLINED, NO_CONSENSUS, UNKNOWN_MODEL; anyone refunding after the deadline chooses it, so its control and invisible characters are written as \\uXXXX escapes); null unless refunded, or while the event is not read yet",
    },
    callbackOk: {
      ...nullable({ type: 'boolean' }),
      description:
        "whether the consumer's onLLMResult ran without failing, as the settlement's LLMFulfilled or LLMRefunded event gives it (false: it reverted or ran out of gas, the settlement standing; true also for a requester without code, where none ran); null until settled and that event read, and for settlements recorded before relays kept it",
    },
  },
  "what the relay recorded of a chain request's settlement on chain",
);

const REQUEST_VIEW = withOptional(
  object(
    {
      requestId: REQUEST_ID,
      status: STATUS,
      error: {
        ...STRING_OR_NULL,
        description:
          'the stable code of an `expired` or `failed` request: QUEUE_TIMEOUT, QUORUM_NOT_MET, DECLINED (the nodes declined it: see `declines`), COORDINATOR_RESTARTED, COORDINATOR_GONE, COORDINATOR_FAILED, …',
      },
      createdAt: TIME,
      updatedAt: TIME,
      coordinator: HEX64,
      request: REQUEST_SUMMARY,
      commits: {
        type: 'array',
        items: object({ packetId: HEX64, nodeId: HEX64, commitment: HEX64, createdAt: TIME }),
      },
      seal: nullable(
        object({
          packetId: HEX64,
          members: { type: 'array', items: schemaOf(SealMemberSchema, 'output') },
          createdAt: TIME,
        }),
      ),
      reveals: {
        type: 'array',
        description: 'the reveals the verdict counted (or, before it, every reveal received)',
        items: withOptional(
          object({
            packetId: HEX64,
            nodeId: HEX64,
            model: schemaOf(ModelRefSchema, 'output'),
            output: { type: 'string' },
            bEmbedding: {
              type: 'string',
              description: 'sign-quantized embedding of the output, packed, in hex',
            },
            createdAt: TIME,
          }),
          {
            usage: {
              ...schemaOf(RevealUsageSchema, 'output'),
              description:
                "the token counts of the node's engine (prompt, chat template included, and output), signed with the reveal but not committed to; absent from a node that does not say",
            },
            finishReason: {
              type: 'string',
              enum: ['length'],
              description:
                "`length` when the node's output was cut at the request's maxTokens (signed with the reveal); absent when it stopped on its own",
            },
          },
        ),
      },
      verdict: nullable(ref('VerdictView')),
      attestations: { type: 'array', items: ref('AttestationView') },
      declines: {
        type: 'array',
        description:
          'nodes that took the request and cannot run it with their model (signed `decline` packets): a request declined by as many nodes as a seal would trust ends `expired` with error `DECLINED`',
        items: object({
          packetId: HEX64,
          nodeId: HEX64,
          model: schemaOf(ModelRefSchema, 'output'),
          reason: { type: 'string', enum: [...DECLINE_REASONS] },
          promptTokens: { type: 'integer', description: "the prompt's length in the model's tokens" },
          contextTokens: { type: 'integer', description: "the node's context window, in tokens" },
          createdAt: TIME,
        }),
      },
      transcriptRoot: HEX64_OR_NULL,
      links: ref('Links'),
    },
    'status, commits, seal, reveals, verdict, attestations, declines, transcript root and links',
  ),
  { chain: CHAIN_RECORD },
);

const VERIFIED = {
  ok: { const: true },
  requestId: REQUEST_ID,
  verdictDigest: HEX64,
  transcriptRoot: HEX64,
  verdict: ref('Verdict'),
};
const STORED_EVIDENCE = {
  transcript: ref('Transcript'),
  verdictPacket: {
    ...ref('Packet'),
    description:
      "the coordinator's signed verdict packet, as the relay published it (its author is the request's; it names the verdict digest and transcript root): the relay's signed claim",
  },
  attestations: {
    type: 'array',
    description: "the nodes' signed attestation packets of the verdict, as received",
    items: ref('Packet'),
  },
};
const NOT_VERIFIED = { ok: { const: false }, error: ref('ErrorDetail') };

const PAGE_CURSOR = { ...STRING_OR_NULL, description: 'the next page’s cursor; null at the end' };
const HISTORY_PAGE = object({
  items: {
    type: 'array',
    items: object({
      requestId: REQUEST_ID,
      status: { type: 'string', enum: [...REQUEST_STATUSES] },
      coordinator: HEX64,
      origin: { type: 'string', enum: [...ORIGIN_KINDS] },
      acceptedModels: { type: 'array', items: { type: 'string' } },
      prompt: { ...STRING_OR_NULL, description: 'its first 200 characters (and `…`); null for messages' },
      createdAt: TIME,
      updatedAt: TIME,
      verdictDigest: HEX64_OR_NULL,
      transcriptRoot: HEX64_OR_NULL,
      winnerNodeId: HEX64_OR_NULL,
      winnerModelId: STRING_OR_NULL,
    }),
  },
  nextCursor: PAGE_CURSOR,
});
const COUNT = { type: 'integer', minimum: 0 };
/** A node as `/v1/nodes` lists it, and `/v1/nodes/{nodeId}` answers it. */
const NODE_SUMMARY = object({
  nodeId: HEX64,
  role: { ...STRING_OR_NULL, description: 'from its latest heartbeat; null for a node never heard' },
  software: STRING_OR_NULL,
  models: { type: 'array', items: { type: 'object' }, description: 'as its latest heartbeat advertised' },
  embedders: {
    type: 'array',
    items: { type: 'object' },
    description: 'as its latest heartbeat advertised',
  },
  tokensPerSecond: { type: 'number' },
  embeddingsPerSecond: { type: 'number' },
  coordinators: {
    type: ['array', 'null'],
    items: HEX64,
    description:
      'the only coordinators (relays) it serves, as its latest heartbeat names them; null: any. A relay not among them does not count it as able to serve its requests',
  },
  firstSeen: { type: ['integer', 'null'], description: 'its first heartbeat; null without one' },
  lastSeen: TIME,
  reputation: object({
    score: { type: 'number' },
    agreements: COUNT,
    disagreements: COUNT,
    withheld: COUNT,
    invalid: COUNT,
    commits: COUNT,
    vouched: COUNT,
    standing: { type: 'integer' },
  }),
});

const NODES_PAGE = object({
  nodes: { type: 'array', items: NODE_SUMMARY },
  nextCursor: PAGE_CURSOR,
});

const HEALTH = {
  type: 'object',
  required: ['ok', 'db', 'admissions', 'network', 'coordinator'],
  properties: {
    ok: { type: 'boolean' },
    error: {
      type: 'object',
      description:
        'when not healthy: the first thing that is not, STORE_UNAVAILABLE (the store) or NETWORK_UNAVAILABLE (no peer that can answer a request: network.detail.reason NO_PEERS)',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: ['STORE_UNAVAILABLE', 'NETWORK_UNAVAILABLE'] },
        message: { type: 'string' },
        hint: { type: 'string' },
      },
    },
    warnings: {
      type: 'array',
      description:
        "what an operator should act on while the relay still serves (none: absent); never a 503 of their own. DB_SCHEMA_NEWER: a newer synod-relay migrated the database (newer: how many migrations past schema, the last this relay knows). REEMBED_UNAVAILABLE: the relay's embedder could not be loaded, so its verdicts do not re-embed reveals. REEMBED_FAILING: its latest re-embedding failed (since: when the spell began). REEMBED_DOWN: its embedder's worker died and is being started again (since: when it died)",
      items: {
        type: 'object',
        required: ['code', 'message', 'hint'],
        properties: {
          code: {
            type: 'string',
            enum: ['DB_SCHEMA_NEWER', 'REEMBED_UNAVAILABLE', 'REEMBED_FAILING', 'REEMBED_DOWN'],
          },
          message: { type: 'string' },
          hint: { type: 'string' },
          newer: COUNT,
          schema: { type: ['string', 'null'] },
          since: { type: 'string', format: 'date-time' },
        },
      },
    },
    db: { type: 'boolean', description: 'whether the database answers reads' },
    primary: {
      type: 'object',
      description: "an embedded replica's primary, which every write needs",
      required: ['ok'],
      properties: {
        ok: { type: 'boolean' },
        reachable: { type: 'boolean' },
        code: { type: 'string', enum: ['STORE_UNAVAILABLE', 'INTERNAL'] },
        reason: { type: 'string' },
        since: TIME,
      },
    },
    admissions: {
      type: 'object',
      description:
        "whether the latest admission was stored; once one failed, past 5 s, whether a write of the relay's own (`probe: true` when that is what failed) is",
      required: ['ok'],
      properties: {
        ok: { type: 'boolean' },
        failedAt: TIME,
        reason: { type: 'string' },
        probe: { type: 'boolean', enum: [true] },
      },
    },
    network: {
      type: 'object',
      required: ['ok', 'peers', 'openRequests'],
      properties: {
        ok: { type: 'boolean' },
        peers: COUNT,
        openRequests: COUNT,
        detail: { type: 'object', additionalProperties: true },
      },
    },
    coordinator: { type: 'string', description: "the coordinator's node id; empty while none is known" },
  },
};

const MODEL = object({
  id: { type: 'string' },
  object: { const: 'model' },
  created: { type: 'integer' },
  owned_by: { type: 'string' },
});
const CHAT_COMPLETION = object({
  id: { type: 'string', description: '`chatcmpl-` and the Synod request id (`synod.requestId`)' },
  object: { const: 'chat.completion' },
  created: { type: 'integer' },
  model: { type: 'string' },
  system_fingerprint: STRING_OR_NULL,
  choices: {
    type: 'array',
    items: object({
      index: { type: 'integer' },
      message: object({
        role: { const: 'assistant' },
        content: { type: 'string' },
        refusal: { type: 'null' },
      }),
      logprobs: { type: 'null' },
      finish_reason: { type: 'string', enum: ['stop', 'length'] },
    }),
  },
  usage: object({
    prompt_tokens: COUNT,
    completion_tokens: COUNT,
    total_tokens: COUNT,
  }),
  synod: object(
    {
      requestId: REQUEST_ID,
      status: STATUS,
      verdict: nullable(ref('VerdictView')),
      verdictDigest: HEX64_OR_NULL,
      transcriptRoot: HEX64_OR_NULL,
      attestations: { type: 'array', items: ref('AttestationView') },
      verify: { type: 'string', description: 'the path that re-verifies it' },
    },
    'the verdict and its proof (Synod extension)',
  ),
});

/** The named schemas (`components.schemas`). */
const SCHEMAS: Record<string, Json> = {
  ErrorDetail: ERROR_DETAIL,
  Error: ERROR_BODY,
  OpenAiError: OPENAI_ERROR_BODY,
  QuotaStanding: QUOTA_STANDING,
  Links: LINKS,
  Packet: PACKET,
  Transcript: STORED_TRANSCRIPT,
  Verdict: VERDICT,
  VerdictView: VERDICT_VIEW,
  AttestationView: ATTESTATION_VIEW,
  Replayed: REPLAYED,
  RequestView: REQUEST_VIEW,
  Verified: object(VERIFIED),
  NotVerified: object(NOT_VERIFIED),
  StoredVerified: object({ ...VERIFIED, ...STORED_EVIDENCE }),
  StoredNotVerified: object({
    ...NOT_VERIFIED,
    verdictDigest: { ...HEX64, description: 'as the relay published it' },
    transcriptRoot: { ...HEX64, description: 'as the relay published it' },
    ...STORED_EVIDENCE,
  }),
  HistoryPage: HISTORY_PAGE,
  NodesPage: NODES_PAGE,
  NodeSummary: NODE_SUMMARY,
  Health: HEALTH,
  Model: MODEL,
  ModelList: object({ object: { const: 'list' }, data: { type: 'array', items: ref('Model') } }),
  ChatCompletion: CHAT_COMPLETION,
};

const idParam = { name: 'id', in: 'path', required: true, schema: REQUEST_ID };
const idempotencyKey = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  schema: { type: 'string', minLength: 1, maxLength: 255 },
  description:
    'remembered 24 h: a retry answers the first request; the same key with another body is 409 IDEMPOTENCY_CONFLICT (on /v1/chat/completions, another inference request: messages, model, sampling parameters, synod; not stream, stream_options or members Synod ignores)',
};
const query = (name: string, schema: Json, description: string) => ({
  name,
  in: 'query',
  required: false,
  schema,
  description,
});

export function openApiDocument(version: string): Json {
  const auth = [{ apiKey: [] }, { signedRequest: [] }];
  /** Routes anyone may call. */
  const open: Json[] = [];
  return {
    openapi: '3.1.0',
    info: {
      title: 'Synod relay',
      version,
      description:
        'Decentralized, verifiable LLM inference: every answer is a verdict of a quorum of independent nodes, re-derivable from its transcript (POST /v1/verify, or synod-verify on your own machine). Any route may also answer 500 INTERNAL, and a route that reads the database 503 STORE_UNAVAILABLE while it cannot be reached; a path not listed here is 404 NOT_FOUND, and a listed path asked with another method 405 METHOD_NOT_ALLOWED with an Allow header (the OpenAI-compatible paths in OpenAI’s error body).',
    },
    servers: [{ url: '/', description: 'the relay that serves this document' }],
    components: {
      schemas: SCHEMAS,
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'an API key, synod_sk_<64 hex>' },
        signedRequest: {
          type: 'apiKey',
          in: 'header',
          name: 'x-synod-signature',
          description:
            'with x-synod-node and x-synod-timestamp: Ed25519 over sha256("synod/v1/http-request" ‖ 0 ‖ lp(method) ‖ lp(path) ‖ lp(timestamp) ‖ lp(sha256(body)) [‖ lp(Idempotency-Key), when sent])',
        },
      },
    },
    paths: {
      '/v1/inference': {
        post: {
          operationId: 'submitInference',
          summary: 'Submit a prompt (or messages) to the network; stored durably before the 202',
          security: auth,
          parameters: [idempotencyKey],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaOf(InferenceInputSchema) } },
          },
          responses: {
            '202': json(ACCEPTED, 'accepted and stored'),
            '200': json(
              ref('Replayed'),
              'a replay of an Idempotency-Key (or of a signed request): the first request, as it stands now; nothing is charged',
            ),
            ...errors(ref('Error'), [400, 401, 403, 408, 409, 413, 415, 503]),
            // QUOTA_EXCEEDED says where the quota stands in headers too, as the chat route does.
            ...errors(ref('Error'), [429], QUOTA_HEADERS),
          },
        },
      },
      '/v1/inference/{id}': {
        get: {
          operationId: 'getRequest',
          summary: 'A request: status, commits, seal, reveals, verdict, attestations, transcript root',
          security: open,
          parameters: [idParam],
          responses: {
            '200': json(ref('RequestView'), 'the request'),
            ...errors(ref('Error'), [400, 404, 429, 503]),
          },
        },
      },
      '/v1/inference/{id}/events': {
        get: {
          operationId: 'streamRequestEvents',
          summary: 'The same as server-sent events (`status`, then `end`) until a terminal status',
          security: open,
          parameters: [
            idParam,
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description:
                'the id of the last `status` event received (a digest of its data): only a newer status is sent',
              schema: { type: 'string' },
            },
          ],
          responses: {
            '200': {
              description:
                'event: status (data: the request view, as GET /v1/inference/{id} answers it), event: end (data: {"status"}); `: keep-alive` comments',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            '204': {
              description: 'the request ended and Last-Event-ID names its final status: nothing more',
            },
            ...errors(ref('Error'), [400, 404, 429, 503]),
          },
        },
      },
      '/v1/chat/completions': {
        post: {
          operationId: 'createChatCompletion',
          summary:
            'OpenAI-compatible chat completion; the answer is the verdict winner, the proof in `synod`',
          security: auth,
          parameters: [idempotencyKey],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaOf(ChatInputSchema) } },
          },
          responses: {
            '200': {
              description:
                'a chat.completion (or, with stream: true, chat.completion.chunk events and [DONE]); the quota headers on a new request, not on a replay',
              headers: ACCEPTED_HEADERS,
              content: {
                'application/json': { schema: ref('ChatCompletion') },
                'text/event-stream': { schema: { type: 'string' } },
              },
            },
            ...errors(
              ref('OpenAiError'),
              [400, 401, 403, 404, 408, 409, 413, 415, 429, 502, 503, 504],
              ADMITTED_ERROR_HEADERS,
            ),
          },
        },
      },
      '/v1/models': {
        get: {
          operationId: 'listModels',
          summary: 'OpenAI-compatible list of the models the network serves, and `synod` (the default list)',
          security: open,
          responses: {
            '200': json(ref('ModelList'), 'the list'),
            ...errors(ref('OpenAiError'), [503], X_SHOULD_RETRY),
          },
        },
      },
      '/v1/models/{id}': {
        get: {
          operationId: 'retrieveModel',
          summary: 'One served model',
          security: open,
          parameters: [
            {
              name: 'id',
              in: 'path',
              required: true,
              schema: { type: 'string' },
              description: 'a model id, or `synod`; percent-encode a `/` in it (`org%2Fmodel`)',
            },
          ],
          responses: {
            '200': json(ref('Model'), 'the model'),
            ...errors(ref('OpenAiError'), [404, 503], X_SHOULD_RETRY),
          },
        },
      },
      '/v1/verify': {
        post: {
          operationId: 'verifyTranscript',
          summary: 'The public verifier: recompute signatures, commitments and consensus of a transcript',
          description:
            'A body in which an object names a member twice is 400 BAD_JSON (details.member, details.path): JSON readers differ on which value a repeated name keeps, so such a text is refused, not verified as one reading of it (I-JSON, RFC 7493).',
          security: open,
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  oneOf: [
                    TRANSCRIPT,
                    {
                      type: 'object',
                      required: ['transcript'],
                      additionalProperties: false,
                      properties: {
                        transcript: TRANSCRIPT,
                        expectedVerdictDigest: EXPECTED_DIGEST,
                        expectedRoot: EXPECTED_DIGEST,
                        reembedded: {
                          description:
                            "the checked verdict's re-embedding claims (its verdict.reembedded): the bits its coordinator computed for the reveals it rejected EMBEDDING_DISAGREES, taken as the recomputation's re-embedded bits. Without them such a verdict does not recompute; whether they are the texts' embeddings only re-embedding tells (synod-verify --reembed).",
                          oneOf: [{ type: 'null' }, { type: 'array', maxItems: 256, items: VERDICT_CLAIM }],
                        },
                      },
                    },
                  ],
                },
              },
            },
          },
          responses: {
            '200': json(ref('Verified'), 'it holds: the verdict'),
            '422': json(ref('NotVerified'), 'it does not hold: the precise reasons'),
            ...errors(ref('Error'), [400, 408, 413, 415, 429]),
          },
        },
      },
      '/v1/verify/{id}': {
        get: {
          operationId: 'verifyStoredRequest',
          summary: 'Re-verify a stored request against its published verdict; the transcript rides along',
          security: open,
          parameters: [idParam],
          responses: {
            '200': json(ref('StoredVerified'), 'it holds'),
            '422': json(
              ref('StoredNotVerified'),
              'it does not hold: the reasons, beside what the relay published',
            ),
            ...errors(ref('Error'), [400, 404, 409, 429, 503]),
          },
        },
      },
      '/v1/history': {
        get: {
          operationId: 'listHistory',
          summary: 'Requests, newest first, paged',
          security: open,
          parameters: [
            query('limit', { type: 'integer', minimum: 1, maximum: 200, default: 50 }, 'page size'),
            query('cursor', { type: 'string' }, 'the previous page’s nextCursor'),
            query('status', { type: 'string', enum: [...REQUEST_STATUSES] }, 'only this status'),
            query('origin', { type: 'string', enum: [...ORIGIN_KINDS] }, 'only this origin'),
            query('model', { type: 'string' }, 'only requests accepting this model'),
            query('node', HEX64, 'only requests this node coordinated or committed to'),
          ],
          responses: {
            '200': json(ref('HistoryPage'), 'a page'),
            ...errors(ref('Error'), [400, 429, 503]),
          },
        },
      },
      '/v1/nodes': {
        get: {
          operationId: 'listNodes',
          summary:
            'Nodes with capabilities (heartbeats) and reputation (from verdicts), last heard first, paged',
          security: open,
          parameters: [
            query('limit', { type: 'integer', minimum: 1, maximum: 500, default: 100 }, 'page size'),
            query('cursor', { type: 'string' }, 'the previous page’s nextCursor'),
            query('node', HEX64, 'only this node'),
          ],
          responses: {
            '200': json(ref('NodesPage'), 'a page'),
            ...errors(ref('Error'), [400, 429, 503]),
          },
        },
      },
      '/v1/nodes/{nodeId}': {
        get: {
          operationId: 'getNode',
          summary:
            'One node: its capabilities and reputation (its standing), as an item of /v1/nodes; 404 for a node this relay has not heard of',
          security: open,
          parameters: [
            {
              name: 'nodeId',
              in: 'path',
              required: true,
              schema: HEX64,
              description: 'the node id (64 lowercase hex digits) a node logs as it starts',
            },
          ],
          responses: {
            '200': json(ref('NodeSummary'), 'the node'),
            ...errors(ref('Error'), [400, 404, 429, 503]),
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'getHealth',
          summary:
            'Health of the database (reads, and whether the latest admission was stored) and the network',
          security: open,
          responses: {
            '200': json(ref('Health'), 'healthy'),
            '503': json(ref('Health'), 'not healthy: `ok` false, and what is not'),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'getMetrics',
          summary: 'Prometheus metrics',
          security: open,
          responses: {
            '200': {
              description: 'text exposition (version 0.0.4)',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'getOpenApiDocument',
          summary: 'This document',
          security: open,
          responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1') },
        },
      },
    },
  };
}
