/**
 * An independent Synod v1 verifier, written from `docs/protocol.md` and `shared/test-vectors/README.md`
 * alone, checked against every golden vector of `shared/test-vectors/v1.json`.
 *
 * It imports no workspace package: canonical JSON, tagged hashes, length prefixes, Ed25519 (key
 * derivation, RFC 8032 signing and the documented strict verification rule), packet ids, request ids,
 * commitments, sign quantization and bit packing, Hamming distances, frame arithmetic, Merkle trees and
 * proofs, transcript checks and the consensus verdict are re-derived here. Only point arithmetic on
 * edwards25519 comes from `@noble/curves`; SHA-256 and SHA-512 come from `node:crypto`.
 *
 * If this file and `shared/src` disagree, one of them, or the protocol document, is wrong: that is the
 * point of keeping it independent.
 */
import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';

// ---------------------------------------------------------------------------------------------------
// Vector types (as described in shared/test-vectors/README.md)

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Envelope {
  v: number;
  type: string;
  from: string;
  body: JsonObject;
  sig: string;
}

interface Vectors {
  format: string;
  version: number;
  jcs: { name: string; json: string; canonical: string; utf8: string; sha256: string }[];
  jcsInvalid: { name: string; json: string }[];
  sha256: { data: string; digest: string }[];
  taggedHashes: { purpose: string; parts: string[]; domainTag: string; digest: string }[];
  nodeIds: { seed: string; nodeId: string }[];
  requestIds: { name: string; body: JsonObject; requestId: string }[];
  commitments: {
    input: {
      requestId: string;
      nodeId: string;
      model: { id: string; fileHash: string };
      output: string;
      bEmbedding: string;
      salt: string;
    };
    outputDigest: string;
    commitment: string;
  }[];
  embeddings: {
    quantize: { name: string; vector: number[]; bits: number; packed: string }[];
    hamming: { a: string; b: string; distance: number; normalized: number }[];
  };
  frame: {
    thresholds: { secDistance: number; bits: number; thresholdBits: number }[];
    required: { secPercentage: number; sealSize: number; required: number }[];
  };
  packets: {
    name: string;
    seed: string;
    type: string;
    from: string;
    body: JsonObject;
    signedBytes: string;
    packetId: string;
    sig: string;
    envelope: Envelope;
    encoded: string;
    merkleLeaf: string;
  }[];
  merkle: { leafData: string[]; leaves: string[]; root: string; proofs: MerkleProof[] }[];
  scenarios: {
    name: string;
    description: string;
    nodes: { role: string; seed: string; nodeId: string }[];
    transcript: { v: number; requestId: string; packets: Envelope[] };
    packetIds: string[];
    leaves: string[];
    root: string;
    /** null between two embeddings of different lengths (no distance is defined). */
    revealDistances: (number | null)[][];
    verdict: JsonObject;
    verdictJcs: string;
    verdictDigest: string;
    /** A second verdict, by a verifier that embeds the outputs again (README: `reembedded`). */
    reembedded?: {
      noiseToleranceBits: number;
      reveals: { revealId: string; bits: string; distance: number }[];
      verdict: JsonObject;
      verdictJcs: string;
      verdictDigest: string;
    };
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../shared/test-vectors/v1.json', import.meta.url), 'utf8'),
) as Vectors;

// ---------------------------------------------------------------------------------------------------
// Bytes, hex, digests

class ConformanceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new ConformanceError('BAD_HEX', `not lowercase hex: ${hex}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());
const sha512 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha512').update(data).digest());

/** `"synod/v1/<tag>" ‖ 0x00` */
const domainTag = (tag: string): Uint8Array => concat(utf8(`synod/v1/${tag}`), new Uint8Array([0]));

/** `H_tag(parts) = SHA-256("synod/v1/<tag>" ‖ 0x00 ‖ parts…)` */
const taggedHash = (tag: string, ...parts: Uint8Array[]): Uint8Array =>
  sha256(concat(domainTag(tag), ...parts));

/** `lp(x)`: 4-byte big-endian length, then x. */
function lp(x: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + x.length);
  new DataView(out.buffer).setUint32(0, x.length, false);
  out.set(x, 4);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// RFC 8785 canonical JSON

function jcsString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff))
        throw new ConformanceError('JCS_LONE_SURROGATE', 'lone high surrogate');
      out += s[i] ?? '';
      out += s[i + 1] ?? '';
      i++;
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) throw new ConformanceError('JCS_LONE_SURROGATE', 'lone low surrogate');
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i] ?? '';
  }
  return `${out}"`;
}

function jcs(value: Json): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ConformanceError('JCS_NON_FINITE', String(value));
    // ECMAScript Number::toString is RFC 8785's number form; -0 serializes as 0.
    return Object.is(value, -0) ? '0' : String(value);
  }
  if (typeof value === 'string') return jcsString(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  // Default string comparison in JavaScript is by UTF-16 code units, which is RFC 8785's key order.
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${jcsString(k)}:${jcs(value[k] as Json)}`).join(',')}}`;
}

const jcsBytes = (value: Json): Uint8Array => utf8(jcs(value));
const asJson = (value: unknown): Json => value as Json;

// ---------------------------------------------------------------------------------------------------
// Ed25519: RFC 8032 key derivation and signing, and the protocol's strict verification rule

const Point = ed25519.Point;
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const bytesToNumberLE = (b: Uint8Array): bigint => {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] ?? 0);
  return n;
};
const numberToBytesLE = (n: bigint, len: number): Uint8Array => {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const mod = (a: bigint, m: bigint): bigint => ((a % m) + m) % m;

function expandSeed(seed: Uint8Array): { scalar: bigint; prefix: Uint8Array; publicKey: Uint8Array } {
  if (seed.length !== 32) throw new ConformanceError('BAD_SEED', 'an Ed25519 seed is 32 bytes');
  const h = sha512(seed);
  const a = h.slice(0, 32);
  a[0] = (a[0] ?? 0) & 248;
  a[31] = ((a[31] ?? 0) & 127) | 64;
  const scalar = bytesToNumberLE(a);
  return { scalar, prefix: h.slice(32), publicKey: Point.BASE.multiply(mod(scalar, L)).toBytes() };
}

const nodeIdOfSeed = (seedHex: string): string => toHex(expandSeed(fromHex(seedHex)).publicKey);

function sign(seedHex: string, message: Uint8Array): Uint8Array {
  const { scalar, prefix, publicKey } = expandSeed(fromHex(seedHex));
  const r = mod(bytesToNumberLE(sha512(concat(prefix, message))), L);
  const R = Point.BASE.multiply(r).toBytes();
  const k = mod(bytesToNumberLE(sha512(concat(R, publicKey, message))), L);
  const S = mod(r + k * scalar, L);
  return concat(R, numberToBytesLE(S, 32));
}

/** A canonical (y < p) encoding of a point that is not of small order, or null. */
function strictPoint(encoding: Uint8Array): ReturnType<typeof Point.fromBytes> | null {
  if (encoding.length !== 32) return null;
  const last = encoding[31] ?? 0;
  const y = bytesToNumberLE(concat(encoding.slice(0, 31), new Uint8Array([last & 0x7f])));
  if (y >= P) return null;
  let point: ReturnType<typeof Point.fromBytes>;
  try {
    point = Point.fromBytes(encoding, false);
  } catch {
    return null;
  }
  return point.isSmallOrder() ? null : point;
}

/**
 * docs/protocol.md, Identity: A and R canonical and not of small order, S < L, and the cofactorless
 * equation checked by comparing the encoding of [S]B - [k]A with R.
 */
function verifyStrict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const A = strictPoint(publicKey);
  const rBytes = signature.slice(0, 32);
  if (A === null || strictPoint(rBytes) === null) return false;
  const S = bytesToNumberLE(signature.slice(32));
  if (S >= L) return false;
  const k = mod(bytesToNumberLE(sha512(concat(rBytes, publicKey, message))), L);
  const check = Point.BASE.multiplyUnsafe(S).subtract(A.multiplyUnsafe(k));
  return toHex(check.toBytes()) === toHex(rBytes);
}

// ---------------------------------------------------------------------------------------------------
// Packets

const signedBytesOf = (e: { v: number; type: string; from: string; body: JsonObject }): Uint8Array =>
  concat(domainTag(`packet/${e.type}`), jcsBytes({ v: e.v, type: e.type, from: e.from, body: e.body }));

const packetIdOf = (e: Envelope): string => toHex(sha256(signedBytesOf(e)));

const merkleLeafOf = (e: Envelope): Uint8Array => taggedHash('merkle-leaf', jcsBytes(asJson(e)));

function requestIdOf(body: JsonObject): string {
  const origin = body['origin'] as JsonObject;
  if (origin['kind'] === 'chain') return `${origin['chainId']}:${origin['contract']}:${origin['requestNo']}`;
  const rest: JsonObject = {};
  for (const [k, v] of Object.entries(body)) if (k !== 'requestId') rest[k] = v;
  return toHex(taggedHash('request-id', jcsBytes(rest)));
}

/**
 * Closed structure of each body type, from the table "Packet bodies" (plus the origin forms and the
 * verdict object): `true` = required key, `false` = optional key, nested shapes for objects and arrays.
 */
type Shape =
  | 'scalar'
  | { [key: string]: [required: boolean, shape: Shape] }
  | { array: Shape }
  | ((v: Json) => Shape);
const MODEL: Shape = { id: [true, 'scalar'], fileHash: [true, 'scalar'] };
const NODE_COMMITMENT: Shape = { nodeId: [true, 'scalar'], commitment: [true, 'scalar'] };
const ORIGIN: Shape = (v) =>
  (v as JsonObject)['kind'] === 'chain'
    ? {
        kind: [true, 'scalar'],
        chainId: [true, 'scalar'],
        contract: [true, 'scalar'],
        requestNo: [true, 'scalar'],
        txHash: [true, 'scalar'],
        blockNumber: [true, 'scalar'],
      }
    : { kind: [true, 'scalar'] };
const FRAME: Shape = {
  quorum: [true, 'scalar'],
  maxCommits: [true, 'scalar'],
  secDistance: [true, 'scalar'],
  secPercentage: [true, 'scalar'],
  maxTimeMs: [true, 'scalar'],
  revealWindowMs: [true, 'scalar'],
  embeddingModel: [true, { id: [true, 'scalar'], fileHash: [true, 'scalar'], bits: [true, 'scalar'] }],
};
const VERDICT: Shape = {
  v: [true, 'scalar'],
  requestId: [true, 'scalar'],
  sealId: [true, 'scalar'],
  status: [true, 'scalar'],
  bits: [true, 'scalar'],
  thresholdBits: [true, 'scalar'],
  sealSize: [true, 'scalar'],
  required: [true, 'scalar'],
  centre: [true, (v) => (v === null ? 'scalar' : NODE_COMMITMENT)],
  accepted: [true, { array: NODE_COMMITMENT }],
  winner: [
    true,
    (v) =>
      v === null
        ? 'scalar'
        : {
            nodeId: [true, 'scalar'],
            commitment: [true, 'scalar'],
            model: [true, MODEL],
            output: [true, 'scalar'],
            outputDigest: [true, 'scalar'],
          },
  ],
  rejected: [
    true,
    {
      array: {
        nodeId: [true, 'scalar'],
        commitment: [true, 'scalar'],
        revealId: [true, 'scalar'],
        reason: [true, 'scalar'],
      },
    },
  ],
  reembedded: [
    false,
    {
      array: {
        nodeId: [true, 'scalar'],
        revealId: [true, 'scalar'],
        bits: [true, 'scalar'],
      },
    },
  ],
};
const BODIES: Record<string, Shape> = {
  request: (v) => ({
    requestId: [true, 'scalar'],
    nonce: [true, 'scalar'],
    ...('messages' in (v as JsonObject)
      ? {
          messages: [true, { array: { role: [true, 'scalar'], content: [true, 'scalar'] } }] as [
            boolean,
            Shape,
          ],
        }
      : { prompt: [true, 'scalar'] as [boolean, Shape] }),
    acceptedModels: [true, { array: 'scalar' }],
    params: [
      true,
      {
        temperature: [true, 'scalar'],
        maxTokens: [true, 'scalar'],
        seed: [false, 'scalar'],
        topP: [false, 'scalar'],
        topK: [false, 'scalar'],
      },
    ],
    frame: [true, FRAME],
    origin: [true, ORIGIN],
    createdAt: [true, 'scalar'],
  }),
  commit: { requestId: [true, 'scalar'], commitment: [true, 'scalar'], createdAt: [true, 'scalar'] },
  seal: {
    requestId: [true, 'scalar'],
    requestPacketId: [true, 'scalar'],
    members: [
      true,
      { array: { nodeId: [true, 'scalar'], commitment: [true, 'scalar'], commitId: [true, 'scalar'] } },
    ],
    createdAt: [true, 'scalar'],
  },
  reveal: {
    requestId: [true, 'scalar'],
    output: [true, 'scalar'],
    bEmbedding: [true, 'scalar'],
    model: [true, MODEL],
    salt: [true, 'scalar'],
    createdAt: [true, 'scalar'],
    finishReason: [false, 'scalar'],
    usage: [false, { completionTokens: [true, 'scalar'], promptTokens: [true, 'scalar'] }],
  },
  verdict: {
    requestId: [true, 'scalar'],
    verdict: [true, VERDICT],
    verdictDigest: [true, 'scalar'],
    transcriptRoot: [true, 'scalar'],
    createdAt: [true, 'scalar'],
  },
  attestation: {
    requestId: [true, 'scalar'],
    verdictDigest: [true, 'scalar'],
    transcriptRoot: [true, 'scalar'],
    createdAt: [true, 'scalar'],
  },
  heartbeat: {
    role: [true, 'scalar'],
    software: [true, 'scalar'],
    models: [
      true,
      {
        array: {
          id: [true, 'scalar'],
          fileHash: [true, 'scalar'],
          engine: [true, 'scalar'],
          tokensPerSecond: [true, 'scalar'],
        },
      },
    ],
    embedders: [
      true,
      {
        array: {
          id: [true, 'scalar'],
          fileHash: [true, 'scalar'],
          bits: [true, 'scalar'],
          embeddingsPerSecond: [true, 'scalar'],
        },
      },
    ],
    capacity: [true, { queued: [true, 'scalar'], maxQueue: [true, 'scalar'] }],
    addresses: [true, { array: 'scalar' }],
    createdAt: [true, 'scalar'],
    coordinators: [false, { array: 'scalar' }],
  },
  decline: {
    requestId: [true, 'scalar'],
    requestPacketId: [true, 'scalar'],
    model: [true, MODEL],
    reason: [true, 'scalar'],
    promptTokens: [true, 'scalar'],
    contextTokens: [true, 'scalar'],
    createdAt: [true, 'scalar'],
  },
};

/** Problems of `value` against `shape`, as `path: problem` strings (none when it conforms). */
function shapeProblems(value: Json, shape: Shape, path: string): string[] {
  const resolved = typeof shape === 'function' ? shape(value) : shape;
  if (resolved === 'scalar') {
    return value !== null && typeof value === 'object' ? [`${path}: expected a scalar`] : [];
  }
  if ('array' in resolved && !Array.isArray(resolved.array)) {
    const inner = resolved.array as Shape;
    if (!Array.isArray(value)) return [`${path}: expected an array`];
    return value.flatMap((item, i) => shapeProblems(item, inner, `${path}[${i}]`));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return [`${path}: expected an object`];
  const fields = resolved as { [key: string]: [boolean, Shape] };
  const problems: string[] = [];
  for (const key of Object.keys(value))
    if (!(key in fields)) problems.push(`${path}.${key}: PACKET_UNKNOWN_FIELD`);
  for (const [key, [required, inner]] of Object.entries(fields)) {
    const field = value[key];
    if (field === undefined) {
      if (required) problems.push(`${path}.${key}: missing`);
    } else problems.push(...shapeProblems(field, inner, `${path}.${key}`));
  }
  return problems;
}

const HEX32 = /^[0-9a-f]{64}$/;
const isInt = (v: Json | undefined, lo: number, hi: number): boolean =>
  typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const sixDecimals = (x: number): boolean => Math.abs(x * 1e6 - Math.round(x * 1e6)) < 1e-6;

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;
const CHAIN_REQUEST_ID = /^\d{1,20}:0x[0-9a-f]{40}:\d{1,78}$/;
const isStr = (v: Json | undefined, max: number, min = 0): boolean =>
  typeof v === 'string' && v.length >= min && v.length <= max;

/** Bounds stated in docs/protocol.md ("Packet bodies", "Security frame"), checked after the shapes. */
function boundProblems(e: Envelope): string[] {
  const problems: string[] = [];
  const b = e.body;
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  check(e.v === 1, 'v: not 1');
  check(HEX32.test(e.from), 'from: not a 32-byte node id');
  check(/^[0-9a-f]{128}$/.test(e.sig), 'sig: not 64 bytes');
  check(isInt(b['createdAt'], 0, Number.MAX_SAFE_INTEGER), 'createdAt: not integer ms');
  if ('requestId' in b) {
    const id = b['requestId'];
    check(
      typeof id === 'string' && id.length <= 142 && (HEX32.test(id) || CHAIN_REQUEST_ID.test(id)),
      'requestId',
    );
  }
  for (const key of ['commitment', 'requestPacketId', 'verdictDigest', 'transcriptRoot'])
    if (key in b) check(HEX32.test(String(b[key])), `${key}: not 32 bytes`);
  const modelRef = (m: Json | undefined, what: string) => {
    const o = m as JsonObject;
    check(typeof o['id'] === 'string' && MODEL_ID.test(o['id']), `${what}.id`);
    check(HEX32.test(String(o['fileHash'])), `${what}.fileHash`);
  };
  if (e.type === 'request') {
    const params = b['params'] as JsonObject;
    const frame = b['frame'] as JsonObject;
    const t = params['temperature'];
    check(typeof t === 'number' && t >= 0 && t <= 2, 'params.temperature');
    check(isInt(params['maxTokens'], 1, 4096), 'params.maxTokens');
    check(params['seed'] === undefined || isInt(params['seed'], 0, 2 ** 32 - 1), 'params.seed');
    const topP = params['topP'];
    check(topP === undefined || (typeof topP === 'number' && topP > 0 && topP <= 1), 'params.topP');
    check(params['topK'] === undefined || isInt(params['topK'], 1, 1000), 'params.topK');
    check(/^[0-9a-f]{32}$/.test(String(b['nonce'])), 'nonce: not 16 bytes');
    const quorum = frame['quorum'];
    check(isInt(quorum, 1, 64), 'frame.quorum');
    check(isInt(frame['maxCommits'], typeof quorum === 'number' ? quorum : 1, 128), 'frame.maxCommits');
    const d = frame['secDistance'];
    check(typeof d === 'number' && d >= 0 && d <= 0.5 && sixDecimals(d), 'frame.secDistance');
    const p = frame['secPercentage'];
    check(typeof p === 'number' && p > 0 && p <= 1 && sixDecimals(p), 'frame.secPercentage');
    check(isInt(frame['maxTimeMs'], 1000, 600_000), 'frame.maxTimeMs');
    check(isInt(frame['revealWindowMs'], 250, 300_000), 'frame.revealWindowMs');
    const embedder = frame['embeddingModel'] as JsonObject;
    modelRef(embedder, 'frame.embeddingModel');
    check(
      isInt(embedder['bits'], 8, 8192) && (embedder['bits'] as number) % 8 === 0,
      'frame.embeddingModel.bits',
    );
    const models = b['acceptedModels'] as Json[];
    check(
      models.length >= 1 &&
        models.length <= 16 &&
        new Set(models).size === models.length &&
        models.every((m) => typeof m === 'string' && MODEL_ID.test(m)),
      'acceptedModels',
    );
    const messages = b['messages'] as JsonObject[] | undefined;
    if (messages === undefined) check(isStr(b['prompt'], 32_768, 1), 'prompt');
    else {
      check(messages.length >= 1 && messages.length <= 64, 'messages: 1-64');
      check(
        messages.every(
          (m) => ['system', 'user', 'assistant'].includes(String(m['role'])) && isStr(m['content'], 32_768),
        ),
        'messages: role or content',
      );
      check(
        messages.reduce((n, m) => n + String(m['content']).length, 0) <= 65_536,
        'messages: 65,536 in all',
      );
    }
    const origin = b['origin'] as JsonObject;
    const kind = origin['kind'];
    check(kind === 'http' || kind === 'peer' || kind === 'chain', 'origin.kind');
    if (kind === 'chain') {
      check(isInt(origin['chainId'], 1, Number.MAX_SAFE_INTEGER), 'origin.chainId');
      check(/^0x[0-9a-f]{40}$/.test(String(origin['contract'])), 'origin.contract');
      check(
        typeof origin['requestNo'] === 'string' && /^\d{1,78}$/.test(origin['requestNo']),
        'origin.requestNo',
      );
      check(/^0x[0-9a-f]{64}$/.test(String(origin['txHash'])), 'origin.txHash');
      check(isInt(origin['blockNumber'], 0, Number.MAX_SAFE_INTEGER), 'origin.blockNumber');
    }
    if (problems.length === 0)
      check(requestIdOf(b) === b['requestId'], 'requestId: not derived from the body');
  }
  if (e.type === 'seal') {
    const members = b['members'] as JsonObject[];
    check(members.length >= 1 && members.length <= 128, 'members: 1-128');
    check(
      members.every(
        (m) =>
          HEX32.test(String(m['nodeId'])) &&
          HEX32.test(String(m['commitment'])) &&
          HEX32.test(String(m['commitId'])),
      ),
      'members: ids and digests are 32 bytes',
    );
    for (let i = 1; i < members.length; i++)
      check(
        String(members[i - 1]?.['nodeId']) < String(members[i]?.['nodeId']),
        'members: not sorted by nodeId, one per node',
      );
  }
  if (e.type === 'reveal') {
    check(isStr(b['output'], 65_536), 'output');
    check(isStr(b['bEmbedding'], 2048) && /^(?:[0-9a-f]{2})+$/.test(String(b['bEmbedding'])), 'bEmbedding');
    modelRef(b['model'], 'model');
    check(HEX32.test(String(b['salt'])), 'salt: not 32 bytes');
    check(b['finishReason'] === undefined || b['finishReason'] === 'length', 'finishReason: only "length"');
  }
  if (e.type === 'verdict') problems.push(...verdictBoundProblems(b['verdict'] as JsonObject));
  if (e.type === 'heartbeat') {
    check(['node', 'relay', 'follower', 'verifier'].includes(String(b['role'])), 'role');
    check(isStr(b['software'], 64), 'software');
    const models = b['models'] as JsonObject[];
    const embedders = b['embedders'] as JsonObject[];
    check(models.length <= 32 && embedders.length <= 32, 'models, embedders: at most 32');
    for (const m of models) {
      modelRef(m, 'models[]');
      check(isStr(m['engine'], 32), 'models[].engine');
      check(
        typeof m['tokensPerSecond'] === 'number' && m['tokensPerSecond'] >= 0 && m['tokensPerSecond'] <= 1e7,
        'models[].tokensPerSecond',
      );
    }
    for (const m of embedders) {
      modelRef(m, 'embedders[]');
      check(isInt(m['bits'], 8, 8192) && (m['bits'] as number) % 8 === 0, 'embedders[].bits');
      const eps = m['embeddingsPerSecond'];
      check(typeof eps === 'number' && eps >= 0 && eps <= 1e7, 'embedders[].embeddingsPerSecond');
    }
    const capacity = b['capacity'] as JsonObject;
    check(isInt(capacity['queued'], 0, 1e6) && isInt(capacity['maxQueue'], 0, 1e6), 'capacity');
    const addresses = b['addresses'] as Json[];
    check(addresses.length <= 16 && addresses.every((a) => isStr(a, 256)), 'addresses');
  }
  return problems;
}

/** The verdict object's bounds ("Packet bodies": `accepted` at most 128 entries, `rejected` at most 256). */
function verdictBoundProblems(v: JsonObject): string[] {
  const problems: string[] = [];
  if ((v['accepted'] as Json[]).length > 128) problems.push('verdict.accepted: at most 128');
  if ((v['rejected'] as Json[]).length > 256) problems.push('verdict.rejected: at most 256');
  if (!['accepted', 'no-consensus'].includes(String(v['status']))) problems.push('verdict.status');
  return problems;
}

function packetProblems(e: Envelope): string[] {
  const envelopeKeys = Object.keys(e).sort().join(',');
  if (envelopeKeys !== 'body,from,sig,type,v') return [`envelope keys: ${envelopeKeys}`];
  const shape = BODIES[e.type];
  if (shape === undefined) return [`type: unknown ${e.type}`];
  const problems = shapeProblems(e.body, shape, 'body');
  if (problems.length > 0) return problems;
  if (utf8(jcs(asJson(e))).length > 256 * 1024) return ['packet larger than 256 KiB'];
  return [
    ...boundProblems(e),
    ...(verifyStrict(fromHex(e.from), signedBytesOf(e), fromHex(e.sig)) ? [] : ['sig: does not verify']),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Embeddings and the frame

function quantize(vector: number[], bits: number): string {
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 0; i < bits; i++) {
    if ((vector[i] ?? 0) > 0) out[i >> 3] = (out[i >> 3] ?? 0) | (1 << (7 - (i % 8)));
  }
  return toHex(out);
}

/** XOR + popcount over 32-bit big-endian words, zero-padded. */
function hamming(aHex: string, bHex: string): number {
  const a = fromHex(aHex);
  const b = fromHex(bHex);
  if (a.length !== b.length) throw new ConformanceError('EMBEDDING_LENGTH', 'vectors of different lengths');
  const words = Math.ceil(a.length / 4);
  let distance = 0;
  for (let w = 0; w < words; w++) {
    let x = 0;
    for (let j = 0; j < 4; j++) x = (x << 8) | (((a[4 * w + j] ?? 0) ^ (b[4 * w + j] ?? 0)) & 0xff);
    x >>>= 0;
    while (x !== 0) {
      x &= x - 1;
      x >>>= 0;
      distance++;
    }
  }
  return distance;
}

const ppm = (x: number): number => Math.round(x * 1e6);
const thresholdBits = (secDistance: number, bits: number): number =>
  Math.floor((ppm(secDistance) * bits) / 1e6);
const requiredAgreement = (secPercentage: number, sealSize: number): number =>
  Math.max(1, Math.floor((ppm(secPercentage) * sealSize + 999_999) / 1e6));

// ---------------------------------------------------------------------------------------------------
// Commitments

interface CommitmentInput {
  requestId: string;
  nodeId: string;
  model: { id: string; fileHash: string };
  output: string;
  bEmbedding: string;
  salt: string;
}

const commitmentOf = (c: CommitmentInput): string =>
  toHex(
    taggedHash(
      'commitment',
      lp(utf8(c.requestId)),
      lp(fromHex(c.nodeId)),
      lp(utf8(c.model.id)),
      lp(fromHex(c.model.fileHash)),
      lp(sha256(utf8(c.output))),
      lp(fromHex(c.bEmbedding)),
      lp(fromHex(c.salt)),
    ),
  );

// ---------------------------------------------------------------------------------------------------
// Merkle tree (RFC 6962 shape: an unpaired last node is promoted unchanged)

interface MerkleProof {
  index: number;
  leafCount: number;
  siblings: string[];
}

function merkleLevels(leaves: Uint8Array[]): Uint8Array[][] {
  if (leaves.length === 0) throw new ConformanceError('MERKLE_EMPTY', 'no leaves, no root');
  const levels = [leaves];
  let level = leaves;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as Uint8Array;
      const right = level[i + 1];
      next.push(right === undefined ? left : taggedHash('merkle-node', left, right));
    }
    levels.push(next);
    level = next;
  }
  return levels;
}

const merkleRoot = (leaves: Uint8Array[]): string =>
  toHex(merkleLevels(leaves).at(-1)?.[0] ?? new Uint8Array());

function merkleProof(leaves: Uint8Array[], index: number): MerkleProof {
  const siblings: string[] = [];
  let i = index;
  for (const level of merkleLevels(leaves).slice(0, -1)) {
    const sibling = i % 2 === 1 ? level[i - 1] : level[i + 1];
    if (sibling !== undefined) siblings.push(toHex(sibling));
    i = Math.floor(i / 2);
  }
  return { index, leafCount: leaves.length, siblings };
}

function rootFromProof(leaf: Uint8Array, proof: MerkleProof): string {
  let node = leaf;
  let i = proof.index;
  let n = proof.leafCount;
  let used = 0;
  if (i < 0 || i >= n) throw new ConformanceError('MERKLE_PROOF', 'index out of range');
  while (n > 1) {
    if (i % 2 === 1 || i + 1 < n) {
      const sibling = proof.siblings[used++];
      if (sibling === undefined) throw new ConformanceError('MERKLE_PROOF', 'too few siblings');
      node =
        i % 2 === 1
          ? taggedHash('merkle-node', fromHex(sibling), node)
          : taggedHash('merkle-node', node, fromHex(sibling));
    }
    i = Math.floor(i / 2);
    n = Math.ceil(n / 2);
  }
  if (used !== proof.siblings.length) throw new ConformanceError('MERKLE_PROOF', 'unused siblings');
  return toHex(node);
}

// ---------------------------------------------------------------------------------------------------
// Transcript checks and the verdict

const TYPE_RANK: Record<string, number> = { request: 0, commit: 1, seal: 2, reveal: 3 };
const SKEW_MS = 120_000;

function transcriptProblems(transcript: { v: number; requestId: string; packets: Envelope[] }): string[] {
  const problems: string[] = [];
  if (transcript.v !== 1) problems.push('transcript.v');
  const ids = transcript.packets.map(packetIdOf);
  for (const [i, e] of transcript.packets.entries()) {
    problems.push(...packetProblems(e).map((p) => `packet ${i}: ${p}`));
    if (!(e.type in TYPE_RANK)) problems.push(`packet ${i}: ${e.type} is not part of a transcript`);
    if (e.body['requestId'] !== transcript.requestId) problems.push(`packet ${i}: another requestId`);
  }
  for (let i = 1; i < transcript.packets.length; i++) {
    const a = transcript.packets[i - 1] as Envelope;
    const b = transcript.packets[i] as Envelope;
    const ra = TYPE_RANK[a.type] ?? 9;
    const rb = TYPE_RANK[b.type] ?? 9;
    if (!(ra < rb || (ra === rb && (ids[i - 1] ?? '') < (ids[i] ?? ''))))
      problems.push(`packets ${i - 1},${i}: not in canonical order or duplicated`);
  }
  const requests = transcript.packets.filter((p) => p.type === 'request');
  const seals = transcript.packets.filter((p) => p.type === 'seal');
  const count = (type: string) => transcript.packets.filter((p) => p.type === type).length;
  if (count('commit') > 128) problems.push('more than 128 commits');
  if (count('reveal') > 256) problems.push('more than 256 reveals');
  if (requests.length !== 1 || seals.length !== 1) return [...problems, 'one request and one seal expected'];
  const request = requests[0] as Envelope;
  const seal = seals[0] as Envelope;
  const frame = request.body['frame'] as JsonObject;
  const members = seal.body['members'] as JsonObject[];
  if (seal.from !== request.from) problems.push('seal: not signed by the request author');
  if (seal.body['requestPacketId'] !== packetIdOf(request)) problems.push('seal: requestPacketId');
  if (members.length < (frame['quorum'] as number) || members.length > (frame['maxCommits'] as number))
    problems.push('SEAL_SIZE');
  const sealAt = seal.body['createdAt'] as number;
  const requestAt = request.body['createdAt'] as number;
  if (sealAt < requestAt) problems.push('SEAL_BEFORE_REQUEST');
  if (sealAt > requestAt + (frame['maxTimeMs'] as number) + SKEW_MS) problems.push('SEAL_LATE');
  const commits = new Map(
    transcript.packets.filter((p) => p.type === 'commit').map((p) => [packetIdOf(p), p] as const),
  );
  for (const m of members) {
    const commit = commits.get(String(m['commitId']));
    if (commit === undefined) problems.push(`seal member ${m['nodeId']}: commit packet missing`);
    else if (commit.from !== m['nodeId'] || commit.body['commitment'] !== m['commitment'])
      problems.push(`seal member ${m['nodeId']}: commit link does not match`);
  }
  return problems;
}

interface Rejection {
  nodeId: string;
  commitment: string | null;
  revealId: string | null;
  reason: string;
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const MAX_VERDICT_ENTRIES = 256;

/** A verifier's own bits for reveals (by packet id), from embedding their outputs again. */
interface Reembedding {
  bits: ReadonlyMap<string, string>;
  /** Largest distance from the claimed bits that still passes; 0 when not given. */
  noiseToleranceBits?: number;
}

/**
 * docs/protocol.md, Consensus, rules 0 to 8; with `reembedding`, rule 1's EMBEDDING_DISAGREES and rule 8's
 * claims too.
 */
function computeVerdict(
  request: Envelope,
  seal: Envelope,
  revealPackets: Envelope[],
  reembedding?: Reembedding,
): JsonObject {
  const requestId = String(request.body['requestId']);
  const frame = request.body['frame'] as JsonObject;
  const bits = (frame['embeddingModel'] as JsonObject)['bits'] as number;
  const acceptedModels = request.body['acceptedModels'] as string[];
  const sealMembers = seal.body['members'] as JsonObject[];

  // Rule 0: the seal closes this request and lists each node once.
  if (seal.body['requestId'] !== requestId || seal.body['requestPacketId'] !== packetIdOf(request))
    throw new ConformanceError('SEAL_INVALID', 'the seal closes another request');
  const members = new Map<string, string>();
  for (const m of sealMembers) {
    if (members.has(String(m['nodeId']))) throw new ConformanceError('SEAL_INVALID', 'a node sealed twice');
    members.set(String(m['nodeId']), String(m['commitment']));
  }
  const sealSize = members.size;
  const threshold = thresholdBits(frame['secDistance'] as number, bits);
  const required = requiredAgreement(frame['secPercentage'] as number, sealSize);
  const windowEnd = (seal.body['createdAt'] as number) + (frame['revealWindowMs'] as number);

  // Rule 0: one reveal per packet id, this request's only.
  const byId = new Map<string, Envelope>();
  for (const p of revealPackets) if (p.body['requestId'] === requestId) byId.set(packetIdOf(p), p);

  // Rule 1: the bits for a member's output: its smallest-id reveal of that output that has bits.
  const ownOf = new Map<string, { id: string; bits: string }>();
  for (const [id, p] of [...byId].sort(([a], [b]) => byString(a, b))) {
    const bitsOf = reembedding?.bits.get(id);
    const key = JSON.stringify([p.from, p.body['output']]);
    if (bitsOf !== undefined && !ownOf.has(key)) ownOf.set(key, { id, bits: bitsOf });
  }
  const claims = new Map<string, { nodeId: string; revealId: string; bits: string }>();
  // Rule 1: validity (null = valid); non-members aside, one smallest reveal id per node.
  const reasonOf = (p: Envelope): string | null => {
    const embedding = p.body['bEmbedding'];
    if (typeof embedding !== 'string' || !new RegExp(`^[0-9a-f]{${bits / 4}}$`).test(embedding))
      return 'EMBEDDING_LENGTH';
    const model = p.body['model'] as { id: string; fileHash: string };
    if (!acceptedModels.includes(model.id)) return 'MODEL_NOT_ACCEPTED';
    const opened = commitmentOf({
      requestId,
      nodeId: p.from,
      model,
      output: String(p.body['output']),
      bEmbedding: embedding,
      salt: String(p.body['salt']),
    });
    if (opened !== members.get(p.from)) return 'COMMITMENT_MISMATCH';
    if ((p.body['createdAt'] as number) > windowEnd) return 'REVEAL_LATE';
    // Only a reveal the verifier has its own bits for is re-checked: more than the tolerance away fails.
    const own = ownOf.get(JSON.stringify([p.from, p.body['output']]));
    if (own !== undefined && hamming(embedding, own.bits) > (reembedding?.noiseToleranceBits ?? 0)) {
      claims.set(own.id, { nodeId: p.from, revealId: own.id, bits: own.bits });
      return 'EMBEDDING_DISAGREES';
    }
    return null;
  };
  const nonMembers = new Map<string, string>();
  const revealsOf = new Map<string, { id: string; packet: Envelope; reason: string | null }[]>();
  for (const [id, p] of [...byId].sort(([a], [b]) => byString(a, b))) {
    if (!members.has(p.from)) {
      if (!nonMembers.has(p.from)) nonMembers.set(p.from, id);
      continue;
    }
    const list = revealsOf.get(p.from) ?? [];
    list.push({ id, packet: p, reason: reasonOf(p) });
    revealsOf.set(p.from, list);
  }

  // Rule 2: one considered reveal per member, at most one DUPLICATE_REVEAL, NOT_REVEALED without reveals.
  const rejected: Rejection[] = [];
  const candidates: { nodeId: string; commitment: string; revealId: string; packet: Envelope }[] = [];
  for (const [nodeId, commitment] of members) {
    const reveals = revealsOf.get(nodeId) ?? []; // in packet id order
    const considered = reveals.find((r) => r.reason === null) ?? reveals[0];
    if (considered === undefined) {
      rejected.push({ nodeId, commitment, revealId: null, reason: 'NOT_REVEALED' });
      continue;
    }
    const duplicate = reveals.find((r) => r !== considered);
    if (duplicate !== undefined)
      rejected.push({ nodeId, commitment, revealId: duplicate.id, reason: 'DUPLICATE_REVEAL' });
    if (considered.reason !== null)
      rejected.push({ nodeId, commitment, revealId: considered.id, reason: considered.reason });
    else candidates.push({ nodeId, commitment, revealId: considered.id, packet: considered.packet });
  }

  // Rule 3: the largest ball, ties to the smallest commitment.
  candidates.sort((a, b) => byString(a.commitment, b.commitment));
  const distance = (a: (typeof candidates)[number], b: (typeof candidates)[number]) =>
    hamming(String(a.packet.body['bEmbedding']), String(b.packet.body['bEmbedding']));
  let centre: (typeof candidates)[number] | undefined;
  let ball: typeof candidates = [];
  for (const c of candidates) {
    const around = candidates.filter((r) => distance(r, c) <= threshold);
    if (around.length > ball.length) {
      centre = c;
      ball = around;
    }
  }

  // Rule 4: accepted iff the ball reaches `required`; under no-consensus every candidate is outside.
  const accepted = centre !== undefined && ball.length >= required;
  const inBall = new Set(accepted ? ball.map((r) => r.nodeId) : []);
  for (const r of candidates)
    if (!inBall.has(r.nodeId))
      rejected.push({
        nodeId: r.nodeId,
        commitment: r.commitment,
        revealId: r.revealId,
        reason: 'OUTSIDE_CLUSTER',
      });

  // Rule 5: the medoid of the accepted set, ties by H_winner-tiebreak(requestId ‖ commitment).
  let winner: JsonObject | null = null;
  if (accepted) {
    const scored = ball.map((r) => ({
      r,
      sum: ball.reduce((s, o) => s + distance(r, o), 0),
      tie: toHex(taggedHash('winner-tiebreak', utf8(requestId), fromHex(r.commitment))),
    }));
    scored.sort((a, b) => a.sum - b.sum || byString(a.tie, b.tie));
    const best = (scored[0] as (typeof scored)[number]).r;
    const model = best.packet.body['model'] as JsonObject;
    const output = String(best.packet.body['output']);
    winner = {
      nodeId: best.nodeId,
      commitment: best.commitment,
      model: { id: model['id'] as string, fileHash: model['fileHash'] as string },
      output,
      outputDigest: toHex(sha256(utf8(output))),
    };
  }

  // Rule 6: non-members, once each, in nodeId order, while there is room.
  const room = Math.max(0, MAX_VERDICT_ENTRIES - rejected.length);
  for (const [nodeId, revealId] of [...nonMembers].sort(([a], [b]) => byString(a, b)).slice(0, room))
    rejected.push({ nodeId, commitment: null, revealId, reason: 'NOT_SEALED' });

  // Rule 7: accepted by commitment (candidates are), rejected by nodeId then revealId, null first.
  rejected.sort(
    (a, b) =>
      byString(a.nodeId, b.nodeId) ||
      (a.revealId === b.revealId
        ? 0
        : a.revealId === null
          ? -1
          : b.revealId === null
            ? 1
            : byString(a.revealId, b.revealId)),
  );
  return {
    v: 1,
    requestId,
    sealId: packetIdOf(seal),
    status: accepted ? 'accepted' : 'no-consensus',
    bits,
    thresholdBits: threshold,
    sealSize,
    required,
    centre: centre === undefined ? null : { nodeId: centre.nodeId, commitment: centre.commitment },
    accepted: accepted ? ball.map((r) => ({ nodeId: r.nodeId, commitment: r.commitment })) : [],
    winner,
    rejected: rejected.map((r) => ({ ...r })),
    // Rule 8: the claims, by nodeId then revealId; absent when none.
    ...(claims.size === 0
      ? {}
      : {
          reembedded: [...claims.values()].sort(
            (a, b) => byString(a.nodeId, b.nodeId) || byString(a.revealId, b.revealId),
          ),
        }),
  };
}

function verdictOfTranscript(packets: Envelope[], reembedding?: Reembedding): JsonObject {
  const request = packets.find((p) => p.type === 'request') as Envelope;
  const seal = packets.find((p) => p.type === 'seal') as Envelope;
  return computeVerdict(
    request,
    seal,
    packets.filter((p) => p.type === 'reveal'),
    reembedding,
  );
}

/** A scenario's re-embedded bits as the verifier's input. */
const reembeddingOf = (r: NonNullable<Vectors['scenarios'][number]['reembedded']>): Reembedding => ({
  bits: new Map(r.reveals.map((x) => [x.revealId, x.bits])),
  noiseToleranceBits: r.noiseToleranceBits,
});

// ---------------------------------------------------------------------------------------------------
// The vectors

describe('protocol conformance: an independent verifier reproduces shared/test-vectors/v1.json', () => {
  test('the file is the v1 vector set', () => {
    expect(vectors.format).toBe('synod-test-vectors');
    expect(vectors.version).toBe(1);
  });

  test('canonical JSON (RFC 8785)', () => {
    for (const c of vectors.jcs) {
      const canonical = jcs(JSON.parse(c.json) as Json);
      expect(canonical).toBe(c.canonical);
      expect(toHex(utf8(canonical))).toBe(c.utf8);
      expect(toHex(sha256(utf8(canonical)))).toBe(c.sha256);
    }
    for (const c of vectors.jcsInvalid) {
      expect(() => jcs(JSON.parse(c.json) as Json)).toThrow('JCS_LONE_SURROGATE');
    }
    expect(() => jcs(Number.NaN)).toThrow('JCS_NON_FINITE');
  });

  test('SHA-256 and tagged hashes', () => {
    for (const c of vectors.sha256) expect(toHex(sha256(fromHex(c.data)))).toBe(c.digest);
    for (const c of vectors.taggedHashes) {
      expect(toHex(domainTag(c.purpose))).toBe(c.domainTag);
      expect(toHex(taggedHash(c.purpose, ...c.parts.map(fromHex)))).toBe(c.digest);
    }
  });

  test('node ids are Ed25519 public keys of their seeds', () => {
    for (const c of vectors.nodeIds) expect(nodeIdOfSeed(c.seed)).toBe(c.nodeId);
  });

  test('request ids', () => {
    for (const c of vectors.requestIds) expect(requestIdOf(c.body)).toBe(c.requestId);
  });

  test('commitments', () => {
    for (const c of vectors.commitments) {
      expect(toHex(sha256(utf8(c.input.output)))).toBe(c.outputDigest);
      expect(commitmentOf(c.input)).toBe(c.commitment);
    }
  });

  test('sign quantization, bit packing and Hamming distances', () => {
    for (const c of vectors.embeddings.quantize) expect(quantize(c.vector, c.bits)).toBe(c.packed);
    for (const c of vectors.embeddings.hamming) {
      const d = hamming(c.a, c.b);
      expect(d).toBe(c.distance);
      expect(d / (8 * fromHex(c.a).length)).toBe(c.normalized);
    }
  });

  test('frame arithmetic in parts per million', () => {
    for (const c of vectors.frame.thresholds)
      expect(thresholdBits(c.secDistance, c.bits)).toBe(c.thresholdBits);
    for (const c of vectors.frame.required)
      expect(requiredAgreement(c.secPercentage, c.sealSize)).toBe(c.required);
  });

  test('packets: signed bytes, ids, deterministic signatures, strict verification, wire form, leaves', () => {
    expect(vectors.packets.map((p) => p.type).sort()).toEqual(
      [
        'attestation',
        'commit',
        'decline',
        'heartbeat',
        'heartbeat',
        'request',
        'request',
        'reveal',
        'reveal',
        'seal',
        'verdict',
      ].sort(),
    );
    for (const p of vectors.packets) {
      expect(nodeIdOfSeed(p.seed)).toBe(p.from);
      const signed = signedBytesOf({ v: 1, type: p.type, from: p.from, body: p.body });
      expect(toHex(signed)).toBe(p.signedBytes);
      expect(toHex(sha256(signed))).toBe(p.packetId);
      expect(toHex(sign(p.seed, signed))).toBe(p.sig);
      expect(p.envelope).toEqual({ v: 1, type: p.type, from: p.from, body: p.body, sig: p.sig });
      expect(jcs(asJson(p.envelope))).toBe(p.encoded);
      expect(toHex(taggedHash('merkle-leaf', utf8(p.encoded)))).toBe(p.merkleLeaf);
      expect(packetProblems(p.envelope)).toEqual([]);
    }
  });

  test('the verdict and attestation packets point at the first scenario', () => {
    const scenario = vectors.scenarios[0];
    if (scenario === undefined) throw new Error('no scenario');
    for (const p of vectors.packets.filter((x) => x.type === 'verdict' || x.type === 'attestation')) {
      expect(p.body['verdictDigest']).toBe(scenario.verdictDigest);
      expect(p.body['transcriptRoot']).toBe(scenario.root);
    }
    const verdictPacket = vectors.packets.find((x) => x.type === 'verdict');
    expect(verdictPacket?.body['verdict']).toEqual(scenario.verdict);
  });

  test('Merkle roots and inclusion proofs', () => {
    expect(vectors.merkle.map((m) => m.leafData.length)).toEqual([1, 2, 3, 4, 5, 7, 8, 9]);
    for (const m of vectors.merkle) {
      const leaves = m.leafData.map((d) => taggedHash('merkle-leaf', fromHex(d)));
      expect(leaves.map(toHex)).toEqual(m.leaves);
      expect(merkleRoot(leaves)).toBe(m.root);
      expect(m.leaves.map((_, i) => merkleProof(leaves, i))).toEqual(m.proofs);
      for (const [i, proof] of m.proofs.entries()) {
        expect(rootFromProof(leaves[i] as Uint8Array, proof)).toBe(m.root);
      }
    }
    expect(() => merkleRoot([])).toThrow('MERKLE_EMPTY');
  });

  test('the scenarios show every reject reason, and the 256-entry cap on rejected', () => {
    const rejectedOf = (v: JsonObject) => v['rejected'] as unknown as Rejection[];
    const reasons = new Set(vectors.scenarios.flatMap((s) => rejectedOf(s.verdict).map((r) => r.reason)));
    // EMBEDDING_DISAGREES needs a verifier that re-embeds outputs; transcript verification does not.
    expect([...reasons].sort()).toEqual([
      'COMMITMENT_MISMATCH',
      'DUPLICATE_REVEAL',
      'EMBEDDING_LENGTH',
      'MODEL_NOT_ACCEPTED',
      'NOT_REVEALED',
      'NOT_SEALED',
      'OUTSIDE_CLUSTER',
      'REVEAL_LATE',
    ]);
    const withBits = vectors.scenarios.flatMap((s) =>
      s.reembedded === undefined ? [] : rejectedOf(s.reembedded.verdict).map((r) => r.reason),
    );
    expect([...new Set([...reasons, ...withBits])].sort()).toEqual([
      'COMMITMENT_MISMATCH',
      'DUPLICATE_REVEAL',
      'EMBEDDING_DISAGREES',
      'EMBEDDING_LENGTH',
      'MODEL_NOT_ACCEPTED',
      'NOT_REVEALED',
      'NOT_SEALED',
      'OUTSIDE_CLUSTER',
      'REVEAL_LATE',
    ]);
    const capped = vectors.scenarios.filter((s) => {
      const seal = s.transcript.packets.find((p) => p.type === 'seal') as Envelope;
      const sealed = new Set((seal.body['members'] as JsonObject[]).map((m) => String(m['nodeId'])));
      const unsealed = new Set(
        s.transcript.packets.filter((p) => p.type === 'reveal' && !sealed.has(p.from)).map((p) => p.from),
      );
      const listed = rejectedOf(s.verdict).filter((r) => r.reason === 'NOT_SEALED');
      return rejectedOf(s.verdict).length === 256 && listed.length < unsealed.size;
    });
    expect(capped.map((s) => s.name)).toHaveLength(1);
  });

  for (const scenario of vectors.scenarios) {
    describe(`scenario ${scenario.name}`, () => {
      const packets = scenario.transcript.packets;

      test('nodes and packets are reproducible from the seeds', () => {
        const seedOf = new Map(scenario.nodes.map((n) => [n.nodeId, n.seed]));
        for (const n of scenario.nodes) expect(nodeIdOfSeed(n.seed)).toBe(n.nodeId);
        for (const p of packets) {
          const seed = seedOf.get(p.from);
          if (seed === undefined) throw new Error(`no seed for ${p.from}`);
          expect(toHex(sign(seed, signedBytesOf(p)))).toBe(p.sig);
        }
      });

      test('the transcript is valid, in canonical order, with the expected ids, leaves and root', () => {
        expect(transcriptProblems(scenario.transcript)).toEqual([]);
        expect(packets.map(packetIdOf)).toEqual(scenario.packetIds);
        const leaves = packets.map(merkleLeafOf);
        expect(leaves.map(toHex)).toEqual(scenario.leaves);
        expect(merkleRoot(leaves)).toBe(scenario.root);
      });

      test('reveal distances', () => {
        const reveals = packets.filter((p) => p.type === 'reveal').map((p) => String(p.body['bEmbedding']));
        expect(
          reveals.map((a) => reveals.map((b) => (a.length === b.length ? hamming(a, b) : null))),
        ).toEqual(scenario.revealDistances);
      });

      test('the verdict, its JCS bytes and its digest', () => {
        const verdict = verdictOfTranscript(packets);
        expect(shapeProblems(verdict, VERDICT, 'verdict')).toEqual([]);
        expect(verdictBoundProblems(verdict)).toEqual([]);
        expect(verdict).toEqual(scenario.verdict);
        expect(jcs(verdict)).toBe(scenario.verdictJcs);
        expect(toHex(taggedHash('verdict', utf8(jcs(verdict))))).toBe(scenario.verdictDigest);
      });

      test('the verdict does not depend on the order of the reveals', () => {
        const reversed = [...packets].reverse();
        expect(jcs(verdictOfTranscript(reversed))).toBe(scenario.verdictJcs);
      });

      const r = scenario.reembedded;
      if (r !== undefined) {
        test('the verdict with the re-embedded bits, its JCS bytes and its digest', () => {
          const claimed = new Map(
            packets
              .filter((p) => p.type === 'reveal')
              .map((p) => [packetIdOf(p), String(p.body['bEmbedding'])]),
          );
          expect(r.reveals.map((x) => x.revealId)).toEqual(
            [...claimed.keys()].filter((id) => r.reveals.some((x) => x.revealId === id)),
          );
          for (const x of r.reveals) expect(hamming(claimed.get(x.revealId) ?? '', x.bits)).toBe(x.distance);
          const verdict = verdictOfTranscript(packets, reembeddingOf(r));
          expect(shapeProblems(verdict, VERDICT, 'verdict')).toEqual([]);
          expect(verdict).toEqual(r.verdict);
          expect(jcs(verdict)).toBe(r.verdictJcs);
          expect(toHex(taggedHash('verdict', utf8(jcs(verdict))))).toBe(r.verdictDigest);
          expect(jcs(verdictOfTranscript([...packets].reverse(), reembeddingOf(r)))).toBe(r.verdictJcs);
          // Rule 8: the verdict's claims alone, at no tolerance, recompute it.
          const claims = (verdict['reembedded'] ?? []) as { revealId: string; bits: string }[];
          expect(claims.length).toBeGreaterThan(0);
          const fromClaims = verdictOfTranscript(packets, {
            bits: new Map(claims.map((c) => [c.revealId, c.bits])),
          });
          expect(jcs(fromClaims)).toBe(r.verdictJcs);
        });
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// The verifier refuses what the document says it must refuse (so the checks above are not vacuous)

describe('protocol conformance: the independent verifier rejects tampering', () => {
  const scenario = vectors.scenarios[0];
  if (scenario === undefined) throw new Error('no scenario');
  const packets = scenario.transcript.packets;
  const clone = <T>(x: T): T => structuredClone(x);

  test('a changed body breaks the signature; a flipped signature bit too', () => {
    const e = clone(packets[0] as Envelope);
    e.body['prompt'] = 'What is the capital of Spain?';
    expect(packetProblems(e)).toContain('sig: does not verify');
    const f = clone(packets[1] as Envelope);
    f.sig = `${f.sig.slice(0, 127)}${f.sig.at(-1) === '0' ? '1' : '0'}`;
    expect(packetProblems(f)).toContain('sig: does not verify');
  });

  test('S >= L and small-order keys are refused (strict Ed25519)', () => {
    const e = packets[1] as Envelope;
    const sig = fromHex(e.sig);
    const S = bytesToNumberLE(sig.slice(32));
    const malleated = concat(sig.slice(0, 32), numberToBytesLE(S + L, 32));
    expect(verifyStrict(fromHex(e.from), signedBytesOf(e), sig)).toBe(true);
    expect(verifyStrict(fromHex(e.from), signedBytesOf(e), malleated)).toBe(false);
    // The identity point as key and as R, with S = 0: satisfies the equation, refused as small order.
    const identity = Point.ZERO.toBytes();
    expect(verifyStrict(identity, signedBytesOf(e), concat(identity, new Uint8Array(32)))).toBe(false);
  });

  test('an unknown field anywhere is refused', () => {
    const e = clone(packets[0] as Envelope);
    (e.body['params'] as JsonObject)['extra'] = 1;
    expect(packetProblems(e)).toEqual(['body.params.extra: PACKET_UNKNOWN_FIELD']);
  });

  test('a request id not derived from its body is refused', () => {
    const e = clone(packets[0] as Envelope);
    e.body['nonce'] = '22222222222222222222222222222222';
    expect(boundProblems(e)).toContain('requestId: not derived from the body');
  });

  test('a reveal that does not open its commitment is COMMITMENT_MISMATCH; a late one REVEAL_LATE', () => {
    const reveal = packets.find((p) => p.type === 'reveal') as Envelope;
    const tampered = clone(reveal);
    tampered.body['output'] = 'Lyon.';
    const late = clone(reveal);
    const seal = packets.find((p) => p.type === 'seal') as Envelope;
    late.body['createdAt'] = (seal.body['createdAt'] as number) + 10_001;
    const reasonOf = (r: Envelope) => {
      const rest = packets.filter((p) => p !== reveal);
      const verdict = verdictOfTranscript([...rest, r]);
      return (verdict['rejected'] as JsonObject[]).find((x) => x['nodeId'] === r.from)?.['reason'];
    };
    expect(reasonOf(tampered)).toBe('COMMITMENT_MISMATCH');
    expect(reasonOf(late)).toBe('REVEAL_LATE');
  });

  test('a transcript out of canonical order, or with a seal by someone else, is refused', () => {
    const swapped = clone(scenario.transcript);
    const [first, second] = [swapped.packets[1] as Envelope, swapped.packets[2] as Envelope];
    swapped.packets[1] = second;
    swapped.packets[2] = first;
    expect(transcriptProblems(swapped)).toContain('packets 1,2: not in canonical order or duplicated');
    const foreign = clone(scenario.transcript);
    const seal = foreign.packets.find((p) => p.type === 'seal') as Envelope;
    const outsider = scenario.nodes.find((n) => n.role === 'member') as { seed: string; nodeId: string };
    seal.from = outsider.nodeId;
    seal.sig = toHex(sign(outsider.seed, signedBytesOf(seal)));
    expect(transcriptProblems(foreign)).toContain('seal: not signed by the request author');
  });

  test('a transcript with more than 256 reveals is refused; a verdict never lists more than 256', () => {
    const capped = vectors.scenarios.find((s) => (s.verdict['rejected'] as Json[]).length === 256);
    if (capped === undefined) throw new Error('no scenario at the cap');
    const seedOf = new Map(capped.nodes.map((n) => [n.nodeId, n.seed]));
    const reveals = capped.transcript.packets.filter((p) => p.type === 'reveal');
    // Copies signed 1 ms later by the nodes that revealed, up to 257 reveals in all.
    const extra = reveals.slice(0, 257 - reveals.length).map((r) => {
      const copy = { ...r, body: { ...r.body, createdAt: (r.body['createdAt'] as number) + 1 }, sig: '' };
      copy.sig = toHex(sign(seedOf.get(r.from) as string, signedBytesOf(copy)));
      return copy;
    });
    const rank = (p: Envelope) => TYPE_RANK[p.type] ?? 9;
    const packets = [...capped.transcript.packets, ...extra].sort(
      (a, b) => rank(a) - rank(b) || byString(packetIdOf(a), packetIdOf(b)),
    );
    expect(packets.filter((p) => p.type === 'reveal')).toHaveLength(257);
    expect(transcriptProblems({ ...capped.transcript, packets })).toEqual(['more than 256 reveals']);
    expect((verdictOfTranscript(packets)['rejected'] as Json[]).length).toBe(256);
  });

  test('a proof with a sibling too many does not verify', () => {
    const m = vectors.merkle.find((x) => x.leafData.length === 3);
    if (m === undefined) throw new Error('no 3-leaf case');
    const proof = m.proofs[2] as MerkleProof;
    const leaf = fromHex(m.leaves[2] as string);
    expect(() =>
      rootFromProof(leaf, { ...proof, siblings: [...proof.siblings, proof.siblings[0] as string] }),
    ).toThrow('MERKLE_PROOF');
  });
});

// ---------------------------------------------------------------------------------------------------
// Consensus rules of docs/protocol.md on variations of scenario 1 (beside the scenarios that show them)

describe('protocol conformance: documented consensus rules beyond the vector scenarios', () => {
  const scenario = vectors.scenarios[0];
  if (scenario === undefined) throw new Error('no scenario');
  const packets = scenario.transcript.packets;
  const request = packets.find((p) => p.type === 'request') as Envelope;
  const seal = packets.find((p) => p.type === 'seal') as Envelope;
  const reveals = packets.filter((p) => p.type === 'reveal');
  const seedOf = new Map(scenario.nodes.map((n) => [n.nodeId, n.seed]));
  const resign = (e: Envelope, body: JsonObject): Envelope => {
    const out = { ...e, body, sig: '' };
    out.sig = toHex(sign(seedOf.get(e.from) as string, signedBytesOf(out)));
    return out;
  };
  const rejectedOf = (v: JsonObject) => v['rejected'] as unknown as Rejection[];
  const winnerId = (scenario.verdict['winner'] as JsonObject)['nodeId'];

  test('a second valid reveal of a member is one DUPLICATE_REVEAL (the larger id); the verdict stands', () => {
    const original = reveals.find((r) => r.from === winnerId) as Envelope;
    const again = resign(original, {
      ...original.body,
      createdAt: (original.body['createdAt'] as number) + 1,
    });
    const third = resign(original, {
      ...original.body,
      createdAt: (original.body['createdAt'] as number) + 2,
    });
    const verdict = computeVerdict(request, seal, [...reveals, again, third]);
    const ids = [original, again, third].map(packetIdOf).sort();
    const duplicates = rejectedOf(verdict).filter((r) => r.reason === 'DUPLICATE_REVEAL');
    const commitment = String((scenario.verdict['winner'] as JsonObject)['commitment']);
    expect(duplicates).toEqual([
      { nodeId: String(winnerId), commitment, revealId: ids[1] as string, reason: 'DUPLICATE_REVEAL' },
    ]);
    expect(verdict['accepted']).toEqual(scenario.verdict['accepted']);
    expect(verdict['winner']).toEqual(scenario.verdict['winner']);
  });

  test('a valid reveal is considered before an invalid one with a smaller id', () => {
    const original = reveals.find((r) => r.from === winnerId) as Envelope;
    // Try late reveals until one sorts before the valid one, so the rule "valid first" is what decides.
    let late: Envelope | undefined;
    for (let ms = 1; late === undefined; ms++) {
      const candidate = resign(original, {
        ...original.body,
        createdAt: (seal.body['createdAt'] as number) + 10_000 + ms,
      });
      if (packetIdOf(candidate) < packetIdOf(original)) late = candidate;
    }
    const verdict = computeVerdict(request, seal, [...reveals, late]);
    expect(verdict['winner']).toEqual(scenario.verdict['winner']);
    expect(rejectedOf(verdict).filter((r) => r.nodeId === winnerId)).toEqual([
      {
        nodeId: String(winnerId),
        commitment: String((verdict['winner'] as JsonObject)['commitment']),
        revealId: packetIdOf(late),
        reason: 'DUPLICATE_REVEAL',
      },
    ]);
  });

  test('a node outside the seal is listed once, with its smallest reveal id', () => {
    const outsiderSeed = 'aa'.repeat(32);
    const outsider = nodeIdOfSeed(outsiderSeed);
    const mk = (createdAt: number): Envelope => {
      const e = {
        v: 1,
        type: 'reveal',
        from: outsider,
        body: { ...(reveals[0] as Envelope).body, createdAt },
        sig: '',
      };
      e.sig = toHex(sign(outsiderSeed, signedBytesOf(e)));
      return e;
    };
    const extra = [mk(1700000006100), mk(1700000006200), mk(1700000006300)];
    const verdict = computeVerdict(request, seal, [...reveals, ...extra]);
    expect(rejectedOf(verdict).filter((r) => r.nodeId === outsider)).toEqual([
      {
        nodeId: outsider,
        commitment: null,
        revealId: extra.map(packetIdOf).sort()[0] as string,
        reason: 'NOT_SEALED',
      },
    ]);
  });

  test('no reveal at all: no centre, no-consensus, every member NOT_REVEALED', () => {
    const verdict = computeVerdict(request, seal, []);
    expect(verdict['status']).toBe('no-consensus');
    expect(verdict['centre']).toBeNull();
    expect(verdict['winner']).toBeNull();
    expect(rejectedOf(verdict).map((r) => r.reason)).toEqual(Array(5).fill('NOT_REVEALED'));
  });

  test('a wrong embedding length or an unaccepted model is refused before the commitment is opened', () => {
    const r = reveals[0] as Envelope;
    const short = resign(r, { ...r.body, bEmbedding: String(r.body['bEmbedding']).slice(2) });
    const otherModel = resign(r, {
      ...r.body,
      model: { id: 'qwen2.5-0.5b-instruct-q4f16_1', fileHash: '00'.repeat(32) },
    });
    const reasonWith = (x: Envelope) =>
      rejectedOf(computeVerdict(request, seal, [...reveals.filter((p) => p !== r), x])).find(
        (e) => e.nodeId === r.from,
      )?.reason;
    expect(reasonWith(short)).toBe('EMBEDDING_LENGTH');
    expect(reasonWith(otherModel)).toBe('MODEL_NOT_ACCEPTED');
  });

  test('a seal for another request packet is no verdict at all', () => {
    const other = resign(seal, { ...seal.body, requestPacketId: '00'.repeat(32) });
    expect(() => computeVerdict(request, other, reveals)).toThrow('SEAL_INVALID');
  });
});

// ---------------------------------------------------------------------------------------------------
// What the scenarios invalid-reveal-before-valid and no-valid-reveal pin (rules 2 to 4), re-derived

describe('protocol conformance: the considered reveal and a verdict without candidates, as scenarios', () => {
  const named = (name: string) => {
    const s = vectors.scenarios.find((x) => x.name === name);
    if (s === undefined) throw new Error(`no scenario ${name}`);
    return s;
  };
  const rejectedOf = (v: JsonObject) => v['rejected'] as unknown as Rejection[];
  interface MemberReveal {
    id: string;
    packet: Envelope;
    /** Whether it reproduces its author's sealed commitment. */
    opens: boolean;
  }
  /** Each sealed member with its reveals, smallest packet id first. */
  const membersOf = (packets: Envelope[]) => {
    const request = packets.find((p) => p.type === 'request') as Envelope;
    const seal = packets.find((p) => p.type === 'seal') as Envelope;
    return (seal.body['members'] as JsonObject[]).map((m) => {
      const nodeId = String(m['nodeId']);
      const commitment = String(m['commitment']);
      const reveals: MemberReveal[] = packets
        .filter((p) => p.type === 'reveal' && p.from === nodeId)
        .map((packet) => ({
          id: packetIdOf(packet),
          packet,
          opens:
            commitmentOf({
              requestId: String(request.body['requestId']),
              nodeId,
              model: packet.body['model'] as { id: string; fileHash: string },
              output: String(packet.body['output']),
              bEmbedding: String(packet.body['bEmbedding']),
              salt: String(packet.body['salt']),
            }) === commitment,
        }))
        .sort((a, b) => byString(a.id, b.id));
      return { nodeId, commitment, reveals };
    });
  };

  describe('invalid-reveal-before-valid', () => {
    const packets = named('invalid-reveal-before-valid').transcript.packets;
    const members = membersOf(packets);
    const twice = members.filter((m) => m.reveals.length === 2);
    const invalidFirst = twice.find((m) => m.reveals[0]?.opens === false);

    test("one member's invalid reveal has the smaller packet id, another's the larger", () => {
      expect(twice).toHaveLength(2);
      for (const m of twice) expect(m.reveals.filter((r) => r.opens)).toHaveLength(1);
      expect(twice.map((m) => (m.reveals[0]?.opens ? 'valid first' : 'invalid first')).sort()).toEqual([
        'invalid first',
        'valid first',
      ]);
    });

    test('either way the valid reveal counts and the invalid one is the DUPLICATE_REVEAL', () => {
      const verdict = verdictOfTranscript(packets);
      expect(verdict['status']).toBe('accepted');
      expect((verdict['accepted'] as JsonObject[]).map((a) => a['nodeId']).sort()).toEqual(
        members.map((m) => m.nodeId).sort(),
      );
      for (const m of twice) {
        const invalid = m.reveals.find((r) => !r.opens) as MemberReveal;
        expect(rejectedOf(verdict).filter((r) => r.nodeId === m.nodeId)).toEqual([
          { nodeId: m.nodeId, commitment: m.commitment, revealId: invalid.id, reason: 'DUPLICATE_REVEAL' },
        ]);
      }
    });

    test('without its valid reveal, the invalid-first member is COMMITMENT_MISMATCH and the quorum is lost', () => {
      if (invalidFirst === undefined) throw new Error('no member with its invalid reveal first');
      const [invalid, valid] = invalidFirst.reveals as [MemberReveal, MemberReveal];
      const verdict = verdictOfTranscript(packets.filter((p) => p !== valid.packet));
      expect(verdict['status']).toBe('no-consensus');
      expect(rejectedOf(verdict).filter((r) => r.nodeId === invalidFirst.nodeId)).toEqual([
        {
          nodeId: invalidFirst.nodeId,
          commitment: invalidFirst.commitment,
          revealId: invalid.id,
          reason: 'COMMITMENT_MISMATCH',
        },
      ]);
    });
  });

  describe('no-valid-reveal', () => {
    const packets = named('no-valid-reveal').transcript.packets;
    const request = packets.find((p) => p.type === 'request') as Envelope;
    const frame = request.body['frame'] as JsonObject;
    const members = membersOf(packets);
    const twice = members.filter((m) => m.reveals.length === 2);

    test('no candidate: no centre, no winner, no-consensus; bits and thresholds still reported', () => {
      const verdict = verdictOfTranscript(packets);
      const bits = (frame['embeddingModel'] as JsonObject)['bits'] as number;
      expect(verdict['status']).toBe('no-consensus');
      expect(verdict['centre']).toBeNull();
      expect(verdict['winner']).toBeNull();
      expect(verdict['accepted']).toEqual([]);
      expect([verdict['bits'], verdict['thresholdBits'], verdict['sealSize'], verdict['required']]).toEqual([
        bits,
        thresholdBits(frame['secDistance'] as number, bits),
        members.length,
        requiredAgreement(frame['secPercentage'] as number, members.length),
      ]);
      expect(rejectedOf(verdict).some((r) => r.reason === 'OUTSIDE_CLUSTER')).toBe(false);
      expect(rejectedOf(verdict).filter((r) => r.reason === 'NOT_SEALED')).toHaveLength(1);
      const listed = new Set(rejectedOf(verdict).map((r) => r.nodeId));
      expect(members.every((m) => listed.has(m.nodeId))).toBe(true);
    });

    test('of two invalid reveals the smaller packet id gives the reason: without it, the other reason', () => {
      expect(twice).toHaveLength(2);
      const verdict = verdictOfTranscript(packets);
      const outcomes = twice.map((m) => {
        const [first, second] = m.reveals as [MemberReveal, MemberReveal];
        const entries = rejectedOf(verdict).filter((r) => r.nodeId === m.nodeId);
        expect(entries.map((r) => [r.revealId, r.reason === 'DUPLICATE_REVEAL'])).toEqual(
          [
            [first.id, false],
            [second.id, true],
          ].sort(([a], [b]) => byString(String(a), String(b))),
        );
        const alone = rejectedOf(verdictOfTranscript(packets.filter((p) => p !== first.packet))).filter(
          (r) => r.nodeId === m.nodeId,
        );
        expect(alone.map((r) => r.revealId)).toEqual([second.id]);
        return [entries.find((r) => r.revealId === first.id)?.reason, alone[0]?.reason];
      });
      // The two members sign the same two kinds of invalid reveal in opposite packet id orders.
      expect(outcomes.map(([withBoth]) => withBoth).sort()).toEqual(['COMMITMENT_MISMATCH', 'REVEAL_LATE']);
      for (const [withBoth, withoutFirst] of outcomes) expect(withoutFirst).not.toBe(withBoth);
      expect(outcomes.map(([, withoutFirst]) => withoutFirst).sort()).toEqual([
        'COMMITMENT_MISMATCH',
        'REVEAL_LATE',
      ]);
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// What the scenario reembedded-disagrees pins (rule 1, EMBEDDING_DISAGREES), re-derived

describe('protocol conformance: re-embedded bits and the noise tolerance, as a scenario', () => {
  const scenario = vectors.scenarios.find((x) => x.name === 'reembedded-disagrees');
  if (scenario === undefined || scenario.reembedded === undefined)
    throw new Error('no scenario reembedded-disagrees with re-embedded bits');
  const r = scenario.reembedded;
  const packets = scenario.transcript.packets;
  const request = packets.find((p) => p.type === 'request') as Envelope;
  const seal = packets.find((p) => p.type === 'seal') as Envelope;
  const windowEnd =
    (seal.body['createdAt'] as number) + ((request.body['frame'] as JsonObject)['revealWindowMs'] as number);
  const tolerance = r.noiseToleranceBits;
  const rejectedOf = (v: JsonObject) => v['rejected'] as unknown as Rejection[];
  const acceptedOf = (v: JsonObject) => (v['accepted'] as JsonObject[]).map((a) => String(a['nodeId']));
  const winnerOf = (v: JsonObject) => (v['winner'] as JsonObject | null)?.['nodeId'] ?? null;
  const bits = new Map(r.reveals.map((x) => [x.revealId, x.bits]));
  const reveals = packets.filter((p) => p.type === 'reveal');
  /** Each reveal: where its claimed bits are against the verifier's, and its outcome in `verdict`. */
  const outcomes = (verdict: JsonObject, own: ReadonlyMap<string, string>) =>
    reveals
      .map((p) => {
        const id = packetIdOf(p);
        const mine = own.get(id);
        const d = mine === undefined ? null : hamming(String(p.body['bEmbedding']), mine);
        const where =
          d === null
            ? 'no bits'
            : d < tolerance
              ? 'within'
              : d === tolerance
                ? 'at'
                : `beyond by ${d - tolerance}`;
        const outcome = acceptedOf(verdict).includes(p.from)
          ? 'accepted'
          : rejectedOf(verdict).find((x) => x.revealId === id)?.reason;
        return `${(p.body['createdAt'] as number) > windowEnd ? 'late, ' : ''}${where}: ${outcome}`;
      })
      .sort();

  test('within and at the tolerance pass, one bit beyond fails, no bits is not re-checked, late comes first', () => {
    expect(tolerance).toBeGreaterThan(0);
    const verdict = verdictOfTranscript(packets, { bits, noiseToleranceBits: tolerance });
    expect(outcomes(verdict, bits)).toEqual([
      'at: accepted',
      'beyond by 1: EMBEDDING_DISAGREES',
      expect.stringMatching(/^late, beyond by \d+: REVEAL_LATE$/),
      'no bits: accepted',
      'within: accepted',
    ]);
    expect(verdict['status']).toBe('accepted');
    expect(acceptedOf(verdict)).toHaveLength(verdict['required'] as number);
  });

  test('without re-embedding, the reveal beyond the tolerance is accepted and the winner', () => {
    const without = verdictOfTranscript(packets);
    const withBits = verdictOfTranscript(packets, { bits, noiseToleranceBits: tolerance });
    const disagrees = rejectedOf(withBits).find((x) => x.reason === 'EMBEDDING_DISAGREES');
    expect(jcs(without)).toBe(scenario.verdictJcs);
    expect(winnerOf(without)).toBe(disagrees?.nodeId ?? '');
    expect(winnerOf(withBits)).not.toBe(disagrees?.nodeId ?? '');
    expect(rejectedOf(without).map((x) => x.reason)).toEqual(['REVEAL_LATE']);
  });

  test('the tolerance decides: one bit less loses the quorum, one bit more accepts the reveal beyond it', () => {
    const less = verdictOfTranscript(packets, { bits, noiseToleranceBits: tolerance - 1 });
    expect(less['status']).toBe('no-consensus');
    expect(rejectedOf(less).filter((x) => x.reason === 'EMBEDDING_DISAGREES')).toHaveLength(2);
    const more = verdictOfTranscript(packets, { bits, noiseToleranceBits: tolerance + 1 });
    expect(jcs(more)).toBe(scenario.verdictJcs);
  });

  test('no tolerance given is 0 bits: the same bits pass, one bit off fails', () => {
    const flipLastBit = (hex: string) =>
      hex.slice(0, -1) + (Number.parseInt(hex.slice(-1), 16) ^ 1).toString(16);
    const claimed = new Map(reveals.map((p) => [packetIdOf(p), String(p.body['bEmbedding'])]));
    const same = new Map([...bits.keys()].map((id) => [id, claimed.get(id) as string]));
    const exact = verdictOfTranscript(packets, { bits: same });
    expect(rejectedOf(exact).map((x) => x.reason)).toEqual(['REVEAL_LATE']);
    const oneOff = new Map([...same].map(([id, b]) => [id, flipLastBit(b)]));
    for (const b of oneOff.keys()) expect(hamming(same.get(b) as string, oneOff.get(b) as string)).toBe(1);
    const strict = verdictOfTranscript(packets, { bits: oneOff });
    expect(strict['status']).toBe('no-consensus');
    expect(rejectedOf(strict).filter((x) => x.reason === 'EMBEDDING_DISAGREES')).toHaveLength(3);
  });

  test('bits for the member that had none re-check it: far off, it fails and the quorum is lost', () => {
    const unchecked = reveals.find((p) => !bits.has(packetIdOf(p)));
    if (unchecked === undefined) throw new Error('no reveal without re-embedded bits');
    const claimed = String(unchecked.body['bEmbedding']);
    const flipped = claimed.replace(/^../, (b) =>
      (Number.parseInt(b, 16) ^ 0xff).toString(16).padStart(2, '0'),
    );
    const own = new Map([...bits, [packetIdOf(unchecked), flipped]]);
    expect(hamming(claimed, flipped)).toBe(8);
    const verdict = verdictOfTranscript(packets, { bits: own, noiseToleranceBits: tolerance });
    expect(verdict['status']).toBe('no-consensus');
    expect(rejectedOf(verdict).find((x) => x.nodeId === unchecked.from)?.reason).toBe('EMBEDDING_DISAGREES');
  });
});
