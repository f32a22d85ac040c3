/**
 * The relay's OpenAPI 3.1 document, served at `GET /openapi.json`, so agents can generate clients and
 * check calls against it. Request bodies come from the very zod schemas the routes validate with
 * (`z.toJSONSchema`), so they cannot drift; responses are described by shape. A test holds the
 * document to the app: every public route is in it, and nothing else.
 */
import { ERROR_CODES } from '@synod/shared';
import { ORIGIN_KINDS, REQUEST_STATUSES } from '@synod/shared/history';
import * as z from 'zod';
import { EDGE_ERROR_CODES } from './http/errors.ts';
import { InferenceInputSchema } from './inference-input.ts';
import { ChatInputSchema } from './routes/openai.ts';

type Json = Record<string, unknown>;

const schemaOf = (s: z.ZodType): Json => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
};

const HEX64 = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const REQUEST_ID = {
  type: 'string',
  description: 'A content request id (64 hex digits), or a chain request `<chainId>:<oracle>:<requestNo>`',
  pattern: '^(?:[0-9a-f]{64}|\\d{1,20}:0x[0-9a-f]{40}:\\d{1,78})$',
};

const ERROR_BODY = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: [...new Set([...EDGE_ERROR_CODES, ...ERROR_CODES])] },
        message: { type: 'string' },
        details: { type: 'object' },
        hint: { type: 'string' },
      },
    },
  },
};
const OPENAI_ERROR_BODY = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      properties: {
        message: { type: 'string' },
        type: { type: 'string' },
        param: { type: ['string', 'null'] },
        code: { type: 'string' },
      },
    },
  },
};

const json = (schema: Json, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const header = (description: string) => ({ description, schema: { type: 'integer', minimum: 0 } });
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
/** On a chat completion (whose body is OpenAI's): its request's id, and the caller's quota after it. */
const ACCEPTED_HEADERS = {
  'x-request-id': {
    description: "the Synod request id (what OpenAI's clients show as `_request_id`)",
    schema: REQUEST_ID,
  },
  'x-synod-quota-limit': header('requests a day this caller may submit'),
  'x-synod-quota-remaining': header('what is left of it today, after this request'),
  'x-synod-quota-reset': header('seconds until the next UTC day, when the count starts again'),
};
const RETRY_AFTER = {
  'retry-after': header(
    'seconds to wait: until the rate limit lets this caller in (RATE_LIMITED), until the next UTC day (QUOTA_EXCEEDED), or until the queue has room (QUEUE_FULL, a 503)',
  ),
};
/** Error responses by status; a 429 says when to retry, and so does a 503 QUEUE_FULL. */
const errors = (body: Json, ...codes: number[]) =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      c === 429
        ? { ...json(body, 'RATE_LIMITED or QUOTA_EXCEEDED'), headers: RETRY_AFTER }
        : c === 503
          ? {
              ...json(
                body,
                'QUEUE_FULL (with Retry-After: the relay already holds its bound of requests waiting for the network; nothing was stored), NETWORK_UNAVAILABLE or STORE_UNAVAILABLE',
              ),
              headers: RETRY_AFTER,
            }
          : json(body, 'an error, with a stable code'),
    ]),
  );

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
const VERDICT_RESULT = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    requestId: REQUEST_ID,
    verdictDigest: HEX64,
    transcriptRoot: HEX64,
    verdict: { type: 'object' },
    transcript: TRANSCRIPT,
    attestations: {
      type: 'array',
      description:
        "GET /v1/verify/{id} only: the nodes' signed attestation packets of the verdict, as received",
      items: { type: 'object' },
    },
  },
};
const REQUEST_VIEW = {
  type: 'object',
  description: 'status, commits, seal, reveals, verdict, attestations, transcript root and links',
  required: ['requestId', 'status'],
  properties: {
    requestId: REQUEST_ID,
    status: { type: 'string', enum: ['queued', ...REQUEST_STATUSES] },
  },
};

const idParam = { name: 'id', in: 'path', required: true, schema: REQUEST_ID };
const query = (name: string, schema: Json, description: string) => ({
  name,
  in: 'query',
  required: false,
  schema,
  description,
});

export function openApiDocument(version: string): Json {
  const auth = [{ apiKey: [] }, { signedRequest: [] }];
  return {
    openapi: '3.1.0',
    info: {
      title: 'Synod relay',
      version,
      description:
        'Decentralized, verifiable LLM inference: every answer is a verdict of a quorum of independent nodes, re-derivable from its transcript (POST /v1/verify, or synod-verify on your own machine).',
    },
    components: {
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
          summary: 'Submit a prompt (or messages) to the network; stored durably before the 202',
          security: auth,
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: { type: 'string', minLength: 1, maxLength: 255 },
              description: 'remembered 24 h: a retry answers the first request',
            },
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaOf(InferenceInputSchema) } },
          },
          responses: {
            '202': {
              ...json(
                {
                  type: 'object',
                  properties: {
                    requestId: REQUEST_ID,
                    status: { const: 'queued' },
                    replayed: { const: false },
                    links: {
                      type: 'object',
                      properties: {
                        self: { type: 'string' },
                        events: { type: 'string' },
                        verify: { type: 'string' },
                      },
                    },
                    quota: QUOTA_STANDING,
                  },
                },
                'accepted and stored',
              ),
            },
            '200': json(
              REQUEST_VIEW,
              'a replay of an Idempotency-Key (or of a signed request): the first request',
            ),
            ...errors(ERROR_BODY, 400, 401, 403, 409, 413, 415, 429, 503),
          },
        },
      },
      '/v1/inference/{id}': {
        get: {
          summary: 'A request: status, commits, seal, reveals, verdict, attestations, transcript root',
          parameters: [idParam],
          responses: { '200': json(REQUEST_VIEW, 'the request'), ...errors(ERROR_BODY, 400, 404) },
        },
      },
      '/v1/inference/{id}/events': {
        get: {
          summary: 'The same as server-sent events (`status`, then `end`) until a terminal status',
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
              description: 'event: status (data: the request view), event: end; `: keep-alive` comments',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            '204': {
              description: 'the request ended and Last-Event-ID names its final status: nothing more',
            },
            ...errors(ERROR_BODY, 400, 404),
          },
        },
      },
      '/v1/chat/completions': {
        post: {
          summary:
            'OpenAI-compatible chat completion; the answer is the verdict winner, the proof in `synod`',
          security: auth,
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaOf(ChatInputSchema) } },
          },
          responses: {
            '200': {
              description:
                'a chat.completion (or, with stream: true, chat.completion.chunk events and [DONE])',
              headers: ACCEPTED_HEADERS,
              content: {
                'application/json': { schema: { type: 'object' } },
                'text/event-stream': { schema: { type: 'string' } },
              },
            },
            ...errors(OPENAI_ERROR_BODY, 400, 401, 403, 409, 413, 415, 429, 502, 503, 504),
          },
        },
      },
      '/v1/models': {
        get: {
          summary: 'OpenAI-compatible list of the models the network serves',
          responses: { '200': json({ type: 'object' }, 'the list') },
        },
      },
      '/v1/models/{id}': {
        get: {
          summary: 'One served model',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': json({ type: 'object' }, 'the model'), ...errors(OPENAI_ERROR_BODY, 404) },
        },
      },
      '/v1/verify': {
        post: {
          summary: 'The public verifier: recompute signatures, commitments and consensus of a transcript',
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
                      properties: {
                        transcript: TRANSCRIPT,
                        expectedVerdictDigest: HEX64,
                        expectedRoot: HEX64,
                      },
                    },
                  ],
                },
              },
            },
          },
          responses: {
            '200': json(VERDICT_RESULT, 'it holds: the verdict'),
            '422': json(
              { type: 'object', properties: { ok: { const: false }, error: ERROR_BODY.properties.error } },
              'it does not hold: the precise reasons',
            ),
            ...errors(ERROR_BODY, 400, 413, 415, 429),
          },
        },
      },
      '/v1/verify/{id}': {
        get: {
          summary: 'Re-verify a stored request against its published verdict; the transcript rides along',
          parameters: [idParam],
          responses: {
            '200': json(VERDICT_RESULT, 'it holds'),
            '422': json({ type: 'object' }, 'it does not hold'),
            ...errors(ERROR_BODY, 400, 404, 409, 429),
          },
        },
      },
      '/v1/history': {
        get: {
          summary: 'Requests, newest first, paged',
          parameters: [
            query('limit', { type: 'integer', minimum: 1, maximum: 200, default: 50 }, 'page size'),
            query('cursor', { type: 'string' }, 'the previous page’s nextCursor'),
            query('status', { type: 'string', enum: [...REQUEST_STATUSES] }, 'only this status'),
            query('origin', { type: 'string', enum: [...ORIGIN_KINDS] }, 'only this origin'),
            query('model', { type: 'string' }, 'only requests accepting this model'),
            query('node', HEX64, 'only requests this node coordinated or committed to'),
          ],
          responses: {
            '200': json(
              {
                type: 'object',
                properties: {
                  items: { type: 'array', items: { type: 'object' } },
                  nextCursor: { type: ['string', 'null'] },
                },
              },
              'a page',
            ),
            ...errors(ERROR_BODY, 400, 429),
          },
        },
      },
      '/v1/nodes': {
        get: {
          summary:
            'Nodes with capabilities (heartbeats) and reputation (from verdicts), last heard first, paged',
          parameters: [
            query('limit', { type: 'integer', minimum: 1, maximum: 500, default: 100 }, 'page size'),
            query('cursor', { type: 'string' }, 'the previous page’s nextCursor'),
            query('node', HEX64, 'only this node'),
          ],
          responses: {
            '200': json(
              {
                type: 'object',
                properties: {
                  nodes: { type: 'array', items: { type: 'object' } },
                  nextCursor: { type: ['string', 'null'] },
                },
              },
              'a page',
            ),
            ...errors(ERROR_BODY, 400, 429),
          },
        },
      },
      '/healthz': {
        get: {
          summary:
            'Health of the database (reads, and whether the latest admission was stored) and the network',
          responses: {
            '200': json({ type: 'object' }, 'healthy'),
            '503': json({ type: 'object' }, 'not healthy'),
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          responses: {
            '200': {
              description: 'text exposition',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/openapi.json': {
        get: { summary: 'This document', responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1') } },
      },
    },
  };
}
