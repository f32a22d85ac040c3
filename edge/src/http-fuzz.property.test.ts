/**
 * A property-based fuzzer of the relay's HTTP surface. Every route of the OpenAPI document (and unknown
 * paths, and known paths asked with other methods) is called over a raw HTTP/1.1 connection with hostile
 * input: bodies that are valid but for one member (wrong types, out of range, huge, `-0`, `1e400`, long
 * digit strings, lone surrogates, deep nesting, duplicate keys in the raw text), truncated, not JSON,
 * empty, over the limit, of the wrong content type or encoding; malformed Authorization, Idempotency-Key,
 * signed-request and Last-Event-ID headers; request ids of every wrong shape, percent-encoding and `..`
 * in paths; junk and repeated query parameters. Whatever is sent, a client must be able to rely on the
 * answer:
 * - it is never a 5xx (the relay's admission log is full, so a valid body gets 503 QUEUE_FULL: that one
 *   says the input was fine, and is allowed; and the relay has no peer, so `/healthz` is 503
 *   NETWORK_UNAVAILABLE);
 * - a 4xx/5xx is JSON with a string `error.code` the relay documents (EDGE_ERROR_CODES, ERROR_CODES);
 * - it is what `/openapi.json` declares for its route and status (checked with ajv, as
 *   openapi-conformance.test.ts does);
 * - a body in a Content-Encoding (the relay decodes none) is a 415, not read as plain JSON;
 * - nothing is stored or charged: the requests, the admission log, the idempotency rows and the keys'
 *   quota use are the same after every call as before the run.
 * And on a relay with room, what it accepts (202) is stored and charged once and reads back (200).
 * The seeds are fixed, so a failure reproduces; fast-check shrinks it to a minimal call. To fuzz longer:
 * SYNOD_FUZZ_SEED=<n> SYNOD_FUZZ_RUNS=<multiplier>; SYNOD_FUZZ_STATS=1 prints the answers seen.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildTranscript, ERROR_CODES, NodeKey, toHex } from '@synod/shared';
import fc from 'fast-check';
import { AGREE_SPEC, buildScenario } from '../../shared/test-vectors/fixtures.ts';
import { createApiKey } from './auth/api-keys.ts';
import { revokeApiKey } from './auth/key-admin.ts';
import { signedRequestDigest } from './auth/signed-request.ts';
import { utcDay } from './http/auth.ts';
import { EDGE_ERROR_CODES } from './http/errors.ts';
import { isOpenAiPath } from './http/openai-paths.ts';
import type { RunningRelay } from './runtime/bun.ts';
import { type Answer, bodyMismatches, type Doc, mismatches } from './test-openapi-check.ts';
import { loneRelay } from './test-relay.ts';

// ---------------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: the fuzzer sends what `fetch` would refuse or normalize (`..` in a path,
// control characters in a header, two Authorization headers, a body without a Content-Length).

/** One request as sent on the wire. */
export interface Call {
  method: string;
  /** The request target as sent (percent-encoding and dots left as they are). */
  target: string;
  /** Header lines, latin1, in order (names may repeat). */
  headers: [string, string][];
  body?: Uint8Array;
  /** Send the body chunked (Transfer-Encoding) instead of with a Content-Length. */
  chunked?: boolean;
}

function dechunk(bytes: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = Number.parseInt(bytes.subarray(at, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    out.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** Send `call` to 127.0.0.1:`port` and read the answer (an event stream: its head only). */
export function send(port: number, call: Call): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no answer to ${call.method} ${call.target}`)), 20_000);
    const parse = (all: Buffer, streaming: boolean): Answer | null => {
      const split = all.indexOf('\r\n\r\n');
      if (split < 0) return null;
      const [statusLine = '', ...lines] = all.subarray(0, split).toString('latin1').split('\r\n');
      const headers = new Headers();
      for (const line of lines) {
        const at = line.indexOf(':');
        headers.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
      }
      const status = Number(statusLine.split(' ')[1]);
      if (streaming) {
        if (!(headers.get('content-type') ?? '').startsWith('text/event-stream')) return null;
        return { status, headers, text: '' };
      }
      const rest = all.subarray(split + 4);
      const body = headers.get('transfer-encoding')?.includes('chunked') ? dechunk(rest) : rest;
      return { status, headers, text: call.method === 'HEAD' ? '' : body.toString('utf8') };
    };
    function finish(e: Error | null, a?: Answer) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (a) resolve(a);
      else reject(e ?? new Error('no answer'));
    }
    socket.on('data', (b: Buffer) => {
      chunks.push(b);
      const a = parse(Buffer.concat(chunks), true);
      if (a) finish(null, a);
    });
    socket.on('error', (e) => {
      // The relay may answer (a 413, a 415) and close before it read a body still being written.
      const a = parse(Buffer.concat(chunks), false);
      finish(a ? null : e, a ?? undefined);
    });
    socket.on('close', () => {
      const a = parse(Buffer.concat(chunks), false);
      finish(
        a ? null : new Error(`the connection closed without an answer to ${call.method} ${call.target}`),
        a ?? undefined,
      );
    });
    const lines = [`${call.method} ${call.target} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close'];
    for (const [k, v] of call.headers) lines.push(`${k}: ${v}`);
    if (call.body !== undefined) {
      lines.push(call.chunked ? 'transfer-encoding: chunked' : `content-length: ${call.body.byteLength}`);
    }
    socket.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
    if (call.body !== undefined) {
      if (!call.chunked) socket.write(call.body);
      else {
        if (call.body.byteLength > 0) {
          socket.write(`${call.body.byteLength.toString(16)}\r\n`);
          socket.write(call.body);
          socket.write('\r\n');
        }
        socket.write('0\r\n\r\n');
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// What the relay must answer.

const CODES = new Set<string>([...EDGE_ERROR_CODES, ...ERROR_CODES]);

/** The document's route a path is served by (each of its parameters, `{id}`, `{nodeId}`, a segment), if any. */
function routeOf(doc: Doc, path: string): string | undefined {
  return Object.keys(doc.paths).find((route) =>
    new RegExp(`^${route.replace(/[.+?^$()|[\]\\]/g, '\\$&').replace(/\{[A-Za-z]+\}/g, '[^/]+')}$`).test(
      path,
    ),
  );
}

/**
 * Bytes HTTP does not allow in a field value (RFC 9110: visible characters, obs-text, space and tab):
 * the server refuses such a request itself (a bare 400) before the relay sees it.
 */
const notAFieldValue = (v: string) =>
  [...v].some((ch) => {
    const c = ch.charCodeAt(0);
    return (c < 0x20 && c !== 0x09) || c === 0x7f;
  });

/** Every way the answer to `call` is one a client cannot rely on; nothing when it is sound. */
export function problems(doc: Doc, call: Call, a: Answer): string[] {
  if (a.status === 400 && a.text === '' && call.headers.some(([, v]) => notAFieldValue(v))) return [];
  const out: string[] = [];
  let body: unknown;
  try {
    body = a.text === '' ? undefined : JSON.parse(a.text);
  } catch {
    body = undefined;
  }
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  // A valid body on a relay whose admission log is full: 503 QUEUE_FULL, a 5xx expected here; and this
  // relay has no peer, so its health is 503 NETWORK_UNAVAILABLE.
  const health = new URL(call.target, 'http://127.0.0.1').pathname === '/healthz';
  const expected5xx =
    a.status === 503 &&
    (code === 'QUEUE_FULL' || (health && (code === 'NETWORK_UNAVAILABLE' || call.method === 'HEAD')));
  if (a.status >= 500 && !expected5xx) {
    out.push(`a ${a.status}: ${a.text.slice(0, 200)}`);
  }
  if (a.status >= 400 && call.method !== 'HEAD') {
    if (typeof code !== 'string')
      out.push(`a ${a.status} without a string error.code: ${a.text.slice(0, 200)}`);
    else if (!CODES.has(code)) out.push(`a ${a.status} with the undocumented code ${code}`);
  }
  // The path as the server resolves it (dot segments, `%2e` among them, removed), as the router sees it.
  const path = new URL(call.target, 'http://127.0.0.1').pathname;
  const route = routeOf(doc, path);
  const served =
    route !== undefined && doc.paths[route]?.[call.method === 'HEAD' ? 'get' : call.method.toLowerCase()];
  if (served) {
    out.push(...mismatches(doc, call.method, route as string, a));
    // A body in a content coding the relay does not decode (it decodes none) is refused as such, not
    // read as if it were plain (a gzip-labelled plain body accepted) nor blamed on its JSON.
    const coding = call.headers
      .find(([k]) => k === 'content-encoding')?.[1]
      .trim()
      .toLowerCase();
    const type = call.headers.find(([k]) => k === 'content-type')?.[1] ?? '';
    if (
      call.body !== undefined &&
      coding &&
      coding !== 'identity' &&
      /^application\/(?:[\w.+-]+\+)?json\b/i.test(type) &&
      a.status !== 415 &&
      a.status !== 429
    ) {
      out.push(`a body in Content-Encoding ${coding} answered ${a.status}, not 415: ${a.text.slice(0, 120)}`);
    }
  } else {
    // An unknown path (404) or a known one asked with another method (405, with Allow).
    if (a.status !== 404 && a.status !== 405) out.push(`${a.status} for an unserved ${call.method} ${path}`);
    if (a.status === 405 && !a.headers.get('allow')) out.push('a 405 without Allow');
    if (call.method !== 'HEAD') {
      const schema = { $ref: `#/components/schemas/${isOpenAiPath(path) ? 'OpenAiError' : 'Error'}` };
      out.push(...bodyMismatches(doc, `${call.method} ${path} ${a.status}`, schema, a.text));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Inputs.

const UNKNOWN_ID = 'ab'.repeat(32);
const MARK = 'FUZZ_MARK_7c1';
const enc = new TextEncoder();

/** Raw JSON text (or not quite JSON) to put where a member's value was. */
const rawToken: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '1e400',
    '-1e400',
    '-0',
    '-0.0',
    '0.1e1',
    '1E2',
    '-1',
    '0',
    '1.5',
    '1e-400',
    '4294967296',
    '9007199254740993',
    'NaN',
    'Infinity',
    '-Infinity',
    '"NaN"',
    '"Infinity"',
    '"-0"',
    '"1e2"',
    '"0x10"',
    'null',
    'true',
    'false',
    '[]',
    '{}',
    '""',
    '" "',
    '"\\ud800"',
    '"a\\udc00b"',
    '"\\ud800\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"\\u202e"',
    '"\\uffff"',
    '"\\ufeff"',
    '01',
    '+1',
    '.5',
    '1.',
    '0x10',
    "'x'",
    'undefined',
    '{"__proto__":{"x":1}}',
    '{"constructor":{"prototype":{}}}',
  ),
  fc.bigInt({ min: -(10n ** 80n), max: 10n ** 80n }).map(String),
  fc.nat({ max: 2_000 }).map((n) => '9'.repeat(n + 20)),
  fc.double().map((d) => JSON.stringify(d)),
  fc.integer().map(String),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => JSON.stringify(s)),
  fc.nat({ max: 5_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.nat({ max: 5_000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  fc.constant(`"${'x'.repeat(70_000)}"`),
  fc.constant(`[${Array.from({ length: 300 }, () => '"m"').join(',')}]`),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
);

/** Every path (as keys) into a JSON value: where a mutation may go. */
function pathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = at.length > 0 ? [at] : [];
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...pathsOf(x, [...at, i]));
  } else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) out.push(...pathsOf(x, [...at, k]));
  return out;
}

function setAt(v: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  if (Array.isArray(v)) return v.map((x, i) => (i === head ? setAt(x, rest, value) : x));
  const o = v as Record<string, unknown>;
  return { ...o, [head]: setAt(o[head], rest, value) };
}

function getAt(v: unknown, path: (string | number)[]): unknown {
  let x = v;
  for (const k of path) x = (x as Record<string | number, unknown>)[k];
  return x;
}

type Mutation =
  | { kind: 'replace'; path: number; raw: string }
  | { kind: 'duplicate'; path: number; raw: string }
  | { kind: 'delete'; path: number }
  | { kind: 'extra'; name: string; raw: string }
  | { kind: 'wrap'; path: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('replace' as const), path: fc.nat(), raw: rawToken }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('duplicate' as const), path: fc.nat(), raw: rawToken }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), path: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('extra' as const),
      name: fc.oneof(
        fc.constantFrom('__proto__', 'constructor', '', 'prompt', 'x'),
        fc.string({ maxLength: 8 }),
      ),
      raw: rawToken,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), path: fc.nat() }) },
);

/** The raw text of `base` with one mutation. */
function mutated(base: unknown, m: Mutation): string {
  const paths = pathsOf(base);
  const path = 'path' in m ? (paths[m.path % paths.length] ?? []) : [];
  const marked = (value: unknown) => JSON.stringify(setAt(base, path, value));
  const quote = JSON.stringify(MARK);
  switch (m.kind) {
    case 'replace':
      return marked(MARK).replace(quote, m.raw);
    case 'duplicate': {
      const key = path.at(-1);
      const original = JSON.stringify(getAt(base, path)) ?? 'null';
      // For an object member: the key twice, the mutated value last; for an array element, one more.
      const again = typeof key === 'string' ? `${JSON.stringify(key)}:${m.raw}` : m.raw;
      return marked(MARK).replace(quote, `${original},${again}`);
    }
    case 'delete': {
      const parent = getAt(base, path.slice(0, -1));
      const key = path.at(-1);
      if (Array.isArray(parent))
        return JSON.stringify(
          setAt(
            base,
            path.slice(0, -1),
            parent.filter((_, i) => i !== key),
          ),
        );
      const { [key as string]: _, ...rest } = parent as Record<string, unknown>;
      return JSON.stringify(setAt(base, path.slice(0, -1), rest));
    }
    case 'extra': {
      const text = JSON.stringify(base);
      return `${text.slice(0, -1)},${JSON.stringify(m.name)}:${m.raw}}`;
    }
    case 'wrap':
      return JSON.stringify(setAt(base, path, [getAt(base, path)]));
  }
}

/** A body for a POST route whose valid form is `base`, and whose limit is `limit` bytes. */
function bodyArb(base: unknown, limit: number): fc.Arbitrary<Uint8Array> {
  const text = JSON.stringify(base);
  return fc.oneof(
    { weight: 10, arbitrary: mutationArb.map((m) => enc.encode(mutated(base, m))) },
    { weight: 1, arbitrary: fc.constant(enc.encode(text)) },
    { weight: 2, arbitrary: fc.nat(text.length - 1).map((n) => enc.encode(text.slice(0, n))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '',
          ' ',
          'null',
          '[]',
          '1',
          '"x"',
          'true',
          '{}',
          '\ufeff{}',
          `\ufeff${text}`,
          `${text}${text}`,
          `${text} x`,
        )
        .map((s) => enc.encode(s)),
    },
    // Not UTF-8: a lone surrogate as its three bytes, an overlong encoding, a stray continuation byte.
    {
      weight: 1,
      arbitrary: fc
        .constantFrom([0xed, 0xa0, 0x80], [0xc0, 0xaf], [0x80], [0xff, 0xfe])
        .map((bad) =>
          Uint8Array.from([...enc.encode(text.slice(0, 12)), ...bad, ...enc.encode(text.slice(12))]),
        ),
    },
    // Over the limit, by a byte or by much.
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(1, 4096)
        .map((extra) => enc.encode(`{"prompt":"${'x'.repeat(limit + extra)}"}`)),
    },
  );
}

const latin1 = fc.string({
  unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});

/** Content-Type and Content-Encoding headers (most often the right ones). */
const typeHeaders: fc.Arbitrary<[string, string][]> = fc
  .tuple(
    fc.oneof(
      { weight: 6, arbitrary: fc.constant<string | null>('application/json') },
      {
        weight: 3,
        arbitrary: fc.constantFrom<string | null>(
          null,
          '',
          'text/plain',
          'application/json; charset=utf-8',
          'application/json; charset=latin1',
          'application/json;charset=utf-16',
          'APPLICATION/JSON',
          'application/vnd.synod+json',
          'application/json-seq',
          'application/jsonx',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          ' application/json',
          'application/json, text/plain',
          'application/json; charset="\u00e9"',
        ),
      },
    ),
    fc.constantFrom<string | null>(null, null, null, 'gzip', 'br', 'identity', 'gzip, deflate'),
  )
  .map(([type, encoding]) => [
    ...(type === null ? [] : ([['content-type', type]] as [string, string][])),
    ...(encoding === null ? [] : ([['content-encoding', encoding]] as [string, string][])),
  ]);

interface Keys {
  valid: string;
  revoked: string;
  spent: string;
}

/** Authorization (and signed-request) headers of every malformed kind, and the good ones. */
function authArb(keys: Keys): fc.Arbitrary<[string, string][]> {
  const k = keys.valid;
  const bearer = (v: string): [string, string][] => [['authorization', v]];
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(bearer(`Bearer ${k}`)) },
    {
      weight: 4,
      arbitrary: fc.constantFrom<[string, string][]>(
        [],
        bearer('Bearer'),
        bearer('Bearer '),
        bearer(`Bearer  ${k}`),
        bearer(`bearer ${k}`),
        bearer(`BEARER ${k}`),
        bearer(`Bearer ${k} `),
        bearer(`Bearer\t${k}`),
        bearer(`Bearer ${k}x`),
        bearer(`Bearer ${k.toUpperCase()}`),
        bearer(`Bearer synod_sk_${'0'.repeat(64)}`),
        bearer(`Bearer synod_sk_${'\u00e9'.repeat(64)}`),
        bearer(`Bearer ${k.slice(0, -1)}\u00e9`),
        bearer(`Basic ${k}`),
        bearer(`Bearer ${k}, Bearer ${k}`),
        bearer(`Bearer ${keys.revoked}`),
        bearer(`Bearer ${keys.spent}`),
        [...bearer(`Bearer ${k}`), ...bearer('Bearer nope')],
        [...bearer('Bearer nope'), ...bearer(`Bearer ${k}`)],
      ),
    },
    { weight: 1, arbitrary: latin1.map((v) => bearer(`Bearer ${v}`)) },
    {
      weight: 2,
      arbitrary: fc
        .record(
          {
            node: fc.oneof(fc.constant(UNKNOWN_ID), latin1),
            timestamp: fc.oneof(
              fc.constantFrom('', '1e400', '-1', 'NaN', '0x10', '9'.repeat(30), ' 1', '1.5'),
              fc.constant(String(Date.now())),
              latin1,
            ),
            signature: fc.oneof(fc.constant('cd'.repeat(64)), fc.constant('CD'.repeat(64)), latin1),
          },
          { requiredKeys: [] },
        )
        .map((s) => [
          ...(s.node === undefined ? [] : ([['x-synod-node', s.node]] as [string, string][])),
          ...(s.timestamp === undefined ? [] : ([['x-synod-timestamp', s.timestamp]] as [string, string][])),
          ...(s.signature === undefined ? [] : ([['x-synod-signature', s.signature]] as [string, string][])),
        ]),
    },
  );
}

const idempotencyArb: fc.Arbitrary<[string, string][]> = fc
  .oneof(
    { weight: 3, arbitrary: fc.constant<string | null>(null) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<string | null>(
        '',
        ' ',
        'k'.repeat(255),
        'k'.repeat(256),
        'k'.repeat(1_000),
        'a\u0001b',
        'a\tb',
        '\u007f',
        '\u00e9\u00ff',
        'fuzz-key',
      ),
    },
    { weight: 1, arbitrary: latin1 },
  )
  .map((v) => (v === null ? [] : [['idempotency-key', v]]));

/** A path segment where a request id goes. */
function idArb(queued: string): fc.Arbitrary<string> {
  const hex = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), maxLength: 70 });
  return fc.oneof(
    fc.constantFrom(
      UNKNOWN_ID,
      UNKNOWN_ID.toUpperCase(),
      queued,
      queued.toUpperCase(),
      `${UNKNOWN_ID}0`,
      UNKNOWN_ID.slice(1),
      '',
      '.',
      '..',
      '%2e%2e',
      '%2E',
      '%2F',
      `${UNKNOWN_ID}%2F`,
      '%00',
      `${UNKNOWN_ID}%00`,
      '%ZZ',
      '%',
      '%e2%82',
      '%F0%9F%98%80',
      `%${UNKNOWN_ID}`,
      `1:0x${'ab'.repeat(20)}:5`,
      `1%3A0x${'ab'.repeat(20)}%3A5`,
      `1:0X${'AB'.repeat(20)}:5`,
      `1:0x${'ab'.repeat(20)}:${'9'.repeat(78)}`,
      `1:0x${'ab'.repeat(20)}:${'9'.repeat(79)}`,
      `${'9'.repeat(21)}:0x${'ab'.repeat(20)}:1`,
      `-1:0x${'ab'.repeat(20)}:1`,
      `1:0x${'ab'.repeat(20)}:-1`,
      `1:0x${'ab'.repeat(20)}:1e3`,
      'a'.repeat(4_000),
      `${UNKNOWN_ID};x=1`,
      `${UNKNOWN_ID}#x`,
      `${UNKNOWN_ID}.json`,
      '%u0061',
      '%2500',
    ),
    hex,
    fc
      .string({ unit: 'binary', maxLength: 30 })
      .map((s) => [...enc.encode(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
  );
}

/** A query string of junk and repeated parameters. */
const queryArb: fc.Arbitrary<string> = fc
  .array(
    fc.tuple(
      fc.constantFrom('limit', 'cursor', 'status', 'origin', 'model', 'node', 'x', 'limit[]', 'LIMIT', ''),
      fc.oneof(
        fc.constantFrom(
          '1e2',
          '-1',
          '0x10',
          '0',
          '1',
          '01',
          '+5',
          ' 5',
          '5 ',
          '1.0',
          '200',
          '201',
          '500',
          '501',
          '99999999999999999999',
          '9'.repeat(400),
          '',
          'NaN',
          'Infinity',
          '\u0661',
          'verdict',
          'queued',
          'http',
          'chain',
          'm',
          UNKNOWN_ID,
          `1:${UNKNOWN_ID}`,
          `${'9'.repeat(17)}:${UNKNOWN_ID}`,
          `1:1:0x${'ab'.repeat(20)}:5`,
          'bad',
          '%ZZ',
          '%',
          '%00',
          '%F0%9F',
        ),
        fc.string({ maxLength: 20 }).map(encodeURIComponent),
      ),
      fc.boolean(),
    ),
    { maxLength: 4 },
  )
  .map((pairs) =>
    pairs.length === 0
      ? ''
      : `?${pairs.map(([k, v, bare]) => (bare && v === '' ? k : `${k}=${/^[\x21-\x7e]*$/.test(v) ? v : encodeURIComponent(v)}`)).join('&')}`,
  );

const lastEventIdArb: fc.Arbitrary<[string, string][]> = fc
  .oneof(
    fc.constant<string | null>(null),
    fc.constantFrom('', ' ', '0', '-1', 'x'.repeat(3_000), 'ab'.repeat(16), '\u0001', '\u00e9'),
    latin1,
  )
  .map((v) => (v === null ? [] : [['last-event-id', v]]));

// ---------------------------------------------------------------------------------------------------
// The relay under fuzz.

const dir = mkdtempSync(join(tmpdir(), 'synod-http-fuzz-'));
let relay: RunningRelay;
let doc: Doc;
let keys: Keys;
/** The one request the admission log holds (its bound is 1, and nothing is dispatched). */
let queued: string;
/** A real transcript, the valid body of POST /v1/verify. */
let transcript: unknown;
const INFERENCE = {
  prompt: 'Once upon a time',
  models: ['m'],
  params: { maxTokens: 4, temperature: 0, seed: 1, topP: 1 },
  frame: { quorum: 1, maxTimeMs: 5_000, revealWindowMs: 1_000, secDistance: 0.15, secPercentage: 0.6 },
};
const INFERENCE_MESSAGES = {
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Once upon a time' },
  ],
  models: ['m'],
};
const CHAT = {
  model: 'm',
  messages: [{ role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] }],
  max_tokens: 4,
  temperature: 0,
  stream: false,
  stream_options: null,
  n: 1,
  stop: [],
  synod: { frame: { quorum: 1, maxTimeMs: 5_000 } },
};

interface Snapshot {
  requests: number;
  usage: number;
  idempotency: number;
}

/** What a rejected request must not change: stored and queued requests, idempotency rows, quota use. */
async function snapshot(): Promise<Snapshot> {
  const one = async (sql: string) => Number((await relay.client.execute(sql)).rows[0]?.[0] ?? 0);
  return {
    // A queued row past its deadline moves from the log to the requests: their sum stays.
    requests:
      (await one('SELECT count(*) FROM requests')) + (await one('SELECT count(*) FROM request_intake')),
    usage: await one('SELECT coalesce(sum(count), 0) FROM usage'),
    idempotency: await one('SELECT count(*) FROM idempotency'),
  };
}

async function newKey(quotaPerDay = 1_000_000): Promise<{ id: string; key: string }> {
  const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
  await relay.store.createApiKey({ id: k.id, hash: k.hash, label: 'fuzz', quotaPerDay }, Date.now());
  return { id: k.id, key: k.key };
}

let before: Snapshot;

beforeAll(async () => {
  relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 71, {
    // Nothing is dispatched, and the log's bound is the one request queued below: every valid body is
    // then refused with QUEUE_FULL, after validation, and nothing the fuzzer sends is ever stored.
    maxOpenRequests: 0,
    maxQueuedRequests: 1,
    config: { rateLimit: { ratePerSecond: 1_000_000, burst: 1_000_000 }, chatWaitSlackMs: 0 },
  });
  doc = (await (await fetch(`${relay.url}/openapi.json`)).json()) as Doc;
  const revoked = await newKey();
  await revokeApiKey(relay.store.db, revoked.id, Date.now(), utcDay(Date.now()));
  keys = { valid: (await newKey()).key, revoked: revoked.key, spent: (await newKey(0)).key };
  const r = await fetch(`${relay.url}/v1/inference`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.valid}` },
    // Queued for the longest frame there is, so it stays for the whole run.
    body: JSON.stringify({ ...INFERENCE, frame: { maxTimeMs: 600_000, revealWindowMs: 300_000 } }),
  });
  if (r.status !== 202) throw new Error(`the queued request was refused: ${await r.text()}`);
  queued = ((await r.json()) as { requestId: string }).requestId;
  const s = await buildScenario(AGREE_SPEC);
  transcript = buildTranscript(s.packets);
  before = await snapshot();
}, 30_000);

afterAll(async () => {
  if (process.env['SYNOD_FUZZ_STATS'])
    console.log(
      [...seen]
        .sort()
        .map(([k, n]) => `${n}\t${k}`)
        .join('\n'),
    );
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Send each call: its answer must be sound, and the database unchanged. */
const seen = new Map<string, number>();
/** With SYNOD_FUZZ_STATS set, the answers seen (by method, path, status and code) are printed at the end. */
function tally(call: Call, a: Answer): void {
  if (process.env['SYNOD_FUZZ_STATS']) {
    const k = `${call.method} ${new URL(call.target, 'http://h').pathname.replace(/\/v1\/(inference|verify|models)\/[^/]+/, '/v1/$1/*').slice(0, 40)} ${a.status} ${/"code":"([A-Z_]+)"/.exec(a.text)?.[1] ?? ''}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
}

async function check(call: Call): Promise<void> {
  const a = await send(relay.port, call);
  tally(call, a);
  const found = problems(doc, call, a);
  const after = await snapshot();
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    found.push(`the database changed: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  }
  if (found.length > 0)
    throw new Error(`${describeCall(call)}\n  answered ${a.status}: ${found.join('\n  ')}`);
}

function describeCall(call: Call): string {
  const body =
    call.body === undefined
      ? ''
      : ` body(${call.body.byteLength}${call.chunked ? ', chunked' : ''}): ${Buffer.from(call.body.subarray(0, 200)).toString('latin1')}`;
  return `${call.method} ${call.target.slice(0, 200)} ${JSON.stringify(call.headers.map(([k, v]) => [k, v.slice(0, 80)]))}${body}`;
}

const signer = NodeKey.fromSeed(new Uint8Array(32).fill(73));

/** `call` as a node signs it (`how`: right, with a timestamp past the skew window, or sent to another query). */
async function signedCall(call: Call, how: string): Promise<Call> {
  const key = await signer;
  const ts = String(Date.now() - (how === 'stale' ? 10 * 60_000 : 0));
  const idem = call.headers.find(([k]) => k === 'idempotency-key')?.[1];
  const digest = signedRequestDigest('POST', call.target, ts, call.body ?? new Uint8Array(), idem);
  return {
    ...call,
    target: how === 'query' ? `${call.target}?x=1` : call.target,
    headers: [
      ...call.headers,
      ['x-synod-node', key.nodeId],
      ['x-synod-timestamp', ts],
      ['x-synod-signature', toHex(await key.sign(digest))],
    ],
  };
}

const SEED = Number(process.env['SYNOD_FUZZ_SEED'] ?? 20_261_123);
/** A multiplier of each property's runs (SYNOD_FUZZ_RUNS; about 10 s at the default, on one core). */
const RUNS = Number(process.env['SYNOD_FUZZ_RUNS'] ?? 4);

describe('the HTTP surface under hostile input', () => {
  test('POST bodies and headers: /v1/inference, /v1/chat/completions, /v1/verify', async () => {
    const routes = [
      {
        route: '/v1/inference',
        bodies: fc.oneof(bodyArb(INFERENCE, 256 * 1024), bodyArb(INFERENCE_MESSAGES, 256 * 1024)),
      },
      { route: '/v1/chat/completions', bodies: bodyArb(CHAT, 256 * 1024) },
      {
        route: '/v1/verify',
        bodies: fc.oneof(
          bodyArb({ transcript, expectedRoot: UNKNOWN_ID }, 4 * 1024 * 1024),
          bodyArb(transcript, 4 * 1024 * 1024),
        ),
      },
    ];
    const callArb = fc.oneof(
      ...routes.map(({ route, bodies }) =>
        fc
          .record({
            body: fc.option(bodies, { freq: 12 }),
            types: typeHeaders,
            auth: authArb(keys),
            idem: idempotencyArb,
            chunked: fc.boolean(),
            gzipped: fc.constantFrom(false, false, false, true),
            // A signed request (in place of the Authorization above): signed right, or right but stale,
            // or right and then sent with another query.
            signed: fc.constantFrom(null, null, null, 'right', 'stale', 'query'),
          })
          .map((r): Call & { signed: string | null } => ({
            method: 'POST',
            target: route,
            headers: [...r.types, ...(r.signed ? [] : r.auth), ...r.idem],
            ...(r.body === null ? {} : { body: r.gzipped ? new Uint8Array(gzipSync(r.body)) : r.body }),
            chunked: r.chunked,
            signed: r.signed,
          })),
      ),
    );
    await fc.assert(
      fc.asyncProperty(callArb, async ({ signed, ...call }) =>
        check(signed ? await signedCall(call, signed) : call),
      ),
      { seed: SEED, numRuns: 350 * RUNS },
    );
  }, 120_000);

  test('request ids and Last-Event-ID: GET /v1/inference/{id}, its events, /v1/verify/{id}, /v1/models/{id}', async () => {
    const callArb = fc
      .record({
        which: fc.constantFrom('inference', 'events', 'verify', 'models'),
        id: fc.oneof(idArb(queued), fc.constantFrom('m', 'synod', 'M', 'm%2C', 'synod%00', '%6d')),
        method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD'),
        lastEventId: lastEventIdArb,
        query: fc.oneof(fc.constant(''), queryArb),
      })
      .map((r): Call => {
        const [prefix, suffix] = {
          inference: ['/v1/inference/', ''],
          events: ['/v1/inference/', '/events'],
          verify: ['/v1/verify/', ''],
          models: ['/v1/models/', ''],
        }[r.which] as [string, string];
        return { method: r.method, target: `${prefix}${r.id}${suffix}${r.query}`, headers: r.lastEventId };
      });
    await fc.assert(fc.asyncProperty(callArb, check), { seed: SEED, numRuns: 300 * RUNS });
  }, 120_000);

  test('queries: GET /v1/history and /v1/nodes, and the service routes', async () => {
    const callArb = fc
      .record({
        route: fc.constantFrom(
          '/v1/history',
          '/v1/history',
          '/v1/nodes',
          '/v1/nodes',
          '/healthz',
          '/metrics',
          '/openapi.json',
          '/v1/models',
        ),
        query: queryArb,
        method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD'),
      })
      .map((r): Call => ({ method: r.method, target: `${r.route}${r.query}`, headers: [] }));
    await fc.assert(fc.asyncProperty(callArb, check), { seed: SEED, numRuns: 250 * RUNS });
  }, 120_000);

  test('unknown paths and wrong methods', async () => {
    const known = Object.keys(doc.paths).map((p) => p.replace(/\{[A-Za-z]+\}/g, UNKNOWN_ID));
    const callArb = fc
      .record({
        path: fc.oneof(
          fc.constantFrom(...known),
          fc.constantFrom(
            '/',
            '/v1',
            '/v1/',
            '/v1/responses',
            '/v1/embeddings',
            '/v1/completions',
            '/v1/chat/completions/',
            '/v1/inference/',
            '/v1/history/',
            '/v1/inference/../verify',
            '/v1/%2e%2e/healthz',
            '//v1/history',
            '/v1//history',
            '/V1/HISTORY',
            '/v1/verify/x/y',
            '/internal/anything',
            '/%ZZ',
            '/v1/%00',
            `/v1/inference/${UNKNOWN_ID}/events/x`,
          ),
          fc
            .array(fc.string({ unit: fc.constantFrom(...'abcxyz019._-~%'), maxLength: 8 }), { maxLength: 4 })
            .map((segs) => `/v1/${segs.join('/')}`),
        ),
        method: fc.constantFrom(
          'GET',
          'POST',
          'PUT',
          'PATCH',
          'DELETE',
          'OPTIONS',
          'HEAD',
          'TRACE',
          'PROPFIND',
        ),
        body: fc.option(fc.constantFrom('{}', JSON.stringify(INFERENCE), 'x'), { freq: 2 }),
      })
      .map(
        (r): Call => ({
          method: r.method,
          target: r.path,
          headers: [
            ['content-type', 'application/json'],
            ['authorization', `Bearer ${keys.valid}`],
          ],
          ...(r.body === null || r.method === 'GET' || r.method === 'HEAD'
            ? {}
            : { body: enc.encode(r.body) }),
        }),
      );
    await fc.assert(fc.asyncProperty(callArb, check), { seed: SEED, numRuns: 250 * RUNS });
  }, 120_000);

  test('regression: a body in a content coding is refused with 415, compressed or not', async () => {
    const body = enc.encode(JSON.stringify(INFERENCE));
    for (const [route, sent] of [
      // Compressed, it was a 400 BAD_JSON "the body is not valid UTF-8"; plain, it was read as JSON.
      ['/v1/inference', new Uint8Array(gzipSync(body))],
      ['/v1/inference', body],
      ['/v1/chat/completions', enc.encode(JSON.stringify(CHAT))],
      ['/v1/verify', enc.encode(JSON.stringify(transcript))],
    ] as const) {
      for (const coding of ['gzip', 'br', 'deflate, gzip']) {
        const a = await send(relay.port, {
          method: 'POST',
          target: route,
          headers: [
            ['content-type', 'application/json'],
            ['content-encoding', coding],
            ['authorization', `Bearer ${keys.valid}`],
          ],
          body: sent,
        });
        expect([route, coding, a.status, JSON.parse(a.text).error.code]).toEqual([
          route,
          coding,
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        ]);
      }
    }
    // Identity is no coding at all.
    const plain = await send(relay.port, {
      method: 'POST',
      target: '/v1/verify',
      headers: [
        ['content-type', 'application/json'],
        ['content-encoding', 'identity'],
      ],
      body: enc.encode(JSON.stringify(transcript)),
    });
    expect(plain.status).toBe(200);
  });

  test('after the whole run: nothing stored, queued or charged', async () => {
    expect(await snapshot()).toEqual(before);
  });
});

describe('a relay that accepts: what it takes is stored and charged once, and reads back', () => {
  const acceptDir = mkdtempSync(join(tmpdir(), 'synod-http-fuzz-accept-'));
  let accepting: RunningRelay;
  let key: string;
  beforeAll(async () => {
    accepting = await loneRelay(`file:${join(acceptDir, 'relay.db')}`, 72, {
      maxOpenRequests: 0,
      config: { rateLimit: { ratePerSecond: 1_000_000, burst: 1_000_000 } },
    });
    const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
    await accepting.store.createApiKey(
      { id: k.id, hash: k.hash, label: 'fuzz', quotaPerDay: 1_000_000 },
      Date.now(),
    );
    key = k.key;
  });
  afterAll(async () => {
    await accepting?.stop();
    rmSync(acceptDir, { recursive: true, force: true });
  });

  const counts = async (): Promise<Snapshot> => {
    const one = async (sql: string) => Number((await accepting.client.execute(sql)).rows[0]?.[0] ?? 0);
    return {
      requests:
        (await one('SELECT count(*) FROM requests')) + (await one('SELECT count(*) FROM request_intake')),
      usage: await one('SELECT coalesce(sum(count), 0) FROM usage'),
      idempotency: await one('SELECT count(*) FROM idempotency'),
    };
  };

  test('POST /v1/inference with one member mutated', async () => {
    const callArb = fc
      .record({
        body: fc.oneof(bodyArb(INFERENCE, 256 * 1024), bodyArb(INFERENCE_MESSAGES, 256 * 1024)),
        idem: fc.oneof(
          idempotencyArb,
          fc.constantFrom('a', 'b', '\u00e9').map((v) => [['idempotency-key', v]] as [string, string][]),
        ),
        chunked: fc.boolean(),
      })
      .map(
        (r): Call => ({
          method: 'POST',
          target: '/v1/inference',
          headers: [['content-type', 'application/json'], ['authorization', `Bearer ${key}`], ...r.idem],
          body: r.body,
          chunked: r.chunked,
        }),
      );
    await fc.assert(
      fc.asyncProperty(callArb, async (call) => {
        const was = await counts();
        const a = await send(accepting.port, call);
        tally({ ...call, target: '/accepting/v1/inference' }, a);
        const found = problems(doc, call, a).filter((p) => !p.includes('QUEUE_FULL'));
        if (a.status >= 500) found.push(`a ${a.status} on a relay with room: ${a.text.slice(0, 200)}`);
        const now = await counts();
        const keyed = call.headers.some(([k]) => k === 'idempotency-key');
        const expected =
          a.status === 202
            ? {
                requests: was.requests + 1,
                usage: was.usage + 1,
                idempotency: was.idempotency + (keyed ? 1 : 0),
              }
            : was;
        if (JSON.stringify(now) !== JSON.stringify(expected)) {
          found.push(`a ${a.status} left ${JSON.stringify(now)} where ${JSON.stringify(expected)} was meant`);
        }
        if (a.status === 200 || a.status === 202) {
          const { requestId } = JSON.parse(a.text) as { requestId: string };
          const read: Call = { method: 'GET', target: `/v1/inference/${requestId}`, headers: [] };
          const view = await send(accepting.port, read);
          if (view.status !== 200) found.push(`its view: ${view.status} ${view.text.slice(0, 200)}`);
          found.push(...problems(doc, read, view));
        }
        if (found.length > 0)
          throw new Error(`${describeCall(call)}\n  answered ${a.status}: ${found.join('\n  ')}`);
      }),
      { seed: SEED, numRuns: 150 * RUNS },
    );
  }, 120_000);
});
