/**
 * Hostile packets for the property-based fuzzers (intake, Waku relay, node): valid signed packets of
 * every type, and fast-check arbitraries that mutate them, as raw bytes and as re-signed bodies. Not
 * part of the public API; kept beside the tests that use it.
 */
import {
  type AnyPacket,
  type BodyOf,
  ERROR_CODES,
  encodePacket,
  LIMITS,
  type NodeKey,
  type PacketType,
  packetId,
  resolveFrame,
  signedBytes,
  signPacket,
  toHex,
  utf8,
} from '@synod/shared';
import fc from 'fast-check';
import { hex64, T0, testKey } from './test-fixtures.ts';
import { type ContentTopic, topicOfPacketType } from './topics.ts';

/** The codes a packet from the network may be rejected with (the intake's documented reasons). */
export const PACKET_REJECT_REASONS: readonly string[] = [
  ...ERROR_CODES.filter((c) => c.startsWith('PACKET_')),
  'REQUEST_ID_MISMATCH',
  'ENCODING_INVALID',
  'TOPIC_MISMATCH',
];

export const EMBEDDER = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 } as const;

/** A valid body of every packet type, created at `createdAt`, varied by `n`. */
export function validBodies(n: number, createdAt = T0): { [T in PacketType]: Record<string, unknown> } {
  const frame = resolveFrame({ embeddingModel: { ...EMBEDDER }, quorum: 1, maxCommits: 1 });
  const content = {
    acceptedModels: ['m'],
    createdAt,
    frame,
    nonce: n.toString(16).padStart(32, '0'),
    origin: { kind: 'http' as const },
    params: { maxTokens: 8, temperature: 0 },
    prompt: `fuzz ${n}`,
  };
  // A content-derived request id needs the real derivation: done by the caller through `signed`.
  const requestId = hex64(n + 1);
  const member = (i: number) => ({ nodeId: hex64(0x1000 + i), commitment: hex64(n + 2), commitId: hex64(i) });
  return {
    request: content,
    commit: { requestId, commitment: hex64(n + 2), createdAt },
    seal: { requestId, requestPacketId: hex64(n + 3), members: [member(1), member(2)], createdAt },
    reveal: {
      requestId,
      output: `output ${n}`,
      bEmbedding: 'ab'.repeat(64),
      model: { id: 'm', fileHash: hex64(7) },
      salt: hex64(n + 4),
      createdAt,
    },
    verdict: {
      requestId,
      verdict: {
        v: 1,
        requestId,
        sealId: hex64(n + 5),
        status: 'accepted',
        bits: 512,
        thresholdBits: 64,
        sealSize: 1,
        required: 1,
        centre: { nodeId: hex64(0x1001), commitment: hex64(n + 2) },
        accepted: [{ nodeId: hex64(0x1001), commitment: hex64(n + 2) }],
        winner: {
          nodeId: hex64(0x1001),
          commitment: hex64(n + 2),
          model: { id: 'm', fileHash: hex64(7) },
          output: `output ${n}`,
          outputDigest: hex64(n + 6),
        },
        rejected: [],
      },
      verdictDigest: hex64(n + 7),
      transcriptRoot: hex64(n + 8),
      createdAt,
    },
    attestation: { requestId, verdictDigest: hex64(n + 7), transcriptRoot: hex64(n + 8), createdAt },
    heartbeat: {
      role: 'node',
      software: `synod-fuzz/${n}`,
      models: [],
      embedders: [],
      capacity: { queued: n % 1000, maxQueue: 1000 },
      addresses: [],
      createdAt,
    },
    decline: {
      requestId,
      requestPacketId: hex64(n + 3),
      model: { id: 'm', fileHash: hex64(7) },
      reason: 'context-exceeded',
      promptTokens: 600 + (n % 1000),
      contextTokens: 512,
      createdAt,
    },
  };
}

export interface SignedCase {
  type: PacketType;
  packet: AnyPacket;
  bytes: Uint8Array;
  id: string;
  topic: ContentTopic;
}

/** Signed, valid packets of every type (a request's id derived from its content by `signPacket`'s schema). */
export async function validPackets(key: NodeKey, n: number, createdAt = T0): Promise<SignedCase[]> {
  const { deriveRequestId } = await import('@synod/shared');
  const bodies = validBodies(n, createdAt);
  const req = bodies.request as Parameters<typeof deriveRequestId>[0];
  bodies.request = { ...bodies.request, requestId: deriveRequestId(req) };
  const out: SignedCase[] = [];
  for (const type of Object.keys(bodies) as PacketType[]) {
    // A body kept loose for mutation; signPacket checks it against the type's schema.
    const packet = (await signPacket(key, type, bodies[type] as unknown as BodyOf[typeof type])) as AnyPacket;
    out.push({
      type,
      packet,
      bytes: encodePacket(packet),
      id: packetId(packet),
      topic: topicOfPacketType(type),
    });
  }
  return out;
}

/**
 * A body signed as it is, without the schema `signPacket` holds it to: what a hostile node with a
 * real key can send. Null when the body has no canonical form (a lone surrogate, say): nobody can sign it.
 */
export async function signRaw(
  key: NodeKey,
  type: string,
  body: unknown,
): Promise<{ bytes: Uint8Array; id: string } | null> {
  let signed: Uint8Array;
  try {
    signed = signedBytes(1, type, key.nodeId, body);
  } catch {
    return null;
  }
  const sig = toHex(await key.sign(signed));
  const envelope = { v: 1, type, from: key.nodeId, body, sig };
  return { bytes: utf8(JSON.stringify(envelope)), id: packetId(envelope as AnyPacket) };
}

export const hostileKey = (): Promise<NodeKey> => testKey(0x7f00_0000);

/** What a raw mutation does to the bytes of a valid packet. */
export type RawMutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; tail: Uint8Array }
  | { kind: 'prefix'; head: Uint8Array }
  | { kind: 'splice'; at: number; bytes: Uint8Array }
  | { kind: 'duplicateKey'; key: 'sig' | 'from' | 'type' | 'v' | 'body'; first: boolean }
  | { kind: 'nest'; depth: number; where: 'body-field' | 'whole' | 'unknown-field' }
  | { kind: 'number'; field: string; literal: string }
  | { kind: 'loneSurrogate'; field: string }
  | { kind: 'oversize'; extra: number };

const INVALID_UTF8: Uint8Array[] = [
  new Uint8Array([0xff]),
  new Uint8Array([0xc0, 0x80]), // overlong NUL
  new Uint8Array([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded as UTF-8
  new Uint8Array([0xf4, 0x90, 0x80, 0x80]), // beyond U+10FFFF
  new Uint8Array([0xe2, 0x82]), // truncated sequence
  new Uint8Array([0xef, 0xbb, 0xbf]), // a BOM
  new Uint8Array([0x00]),
];

const NUMBER_LITERALS = [
  '1e400',
  '-1e400',
  '-0',
  '1e-400',
  '9007199254740993',
  '1.0',
  '0.5',
  '-1',
  '18446744073709551615',
  '1E3',
  '0x10',
  'NaN',
  'Infinity',
  '"1"',
  'null',
  '[]',
  '{}',
  'true',
];

export function rawMutation(): fc.Arbitrary<RawMutation> {
  return fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('extend' as const),
      tail: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.constantFrom(...INVALID_UTF8)),
    }),
    fc.record({
      kind: fc.constant('prefix' as const),
      head: fc.oneof(
        fc.constant(new Uint8Array([0xff, 0xff, 0xff, 0xff])),
        fc.constant(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])),
        fc.constantFrom(...INVALID_UTF8),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
      ),
    }),
    fc.record({
      kind: fc.constant('splice' as const),
      at: fc.nat(),
      bytes: fc.constantFrom(...INVALID_UTF8),
    }),
    fc.record({
      kind: fc.constant('duplicateKey' as const),
      key: fc.constantFrom('sig' as const, 'from' as const, 'type' as const, 'v' as const, 'body' as const),
      first: fc.boolean(),
    }),
    fc.record({
      kind: fc.constant('nest' as const),
      depth: fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 2000, max: 120_000 })),
      where: fc.constantFrom('body-field' as const, 'whole' as const, 'unknown-field' as const),
    }),
    fc.record({
      kind: fc.constant('number' as const),
      field: fc.constantFrom('createdAt', 'v', 'maxTokens', 'temperature', 'queued', 'bits'),
      literal: fc.constantFrom(...NUMBER_LITERALS),
    }),
    fc.record({
      kind: fc.constant('loneSurrogate' as const),
      field: fc.constantFrom('requestId', 'output', 'software', 'prompt', 'sig', 'from'),
    }),
    fc.record({ kind: fc.constant('oversize' as const), extra: fc.integer({ min: 1, max: 4096 }) }),
  );
}

/** Replace the first `"field":<scalar>` member's value in JSON text. */
function replaceMember(text: string, field: string, value: string): string {
  const re = new RegExp(`"${field}":("(?:[^"\\\\]|\\\\.)*"|-?[0-9.eE+-]+|true|false|null)`);
  return text.replace(re, `"${field}":${value}`);
}

export function applyRaw(bytes: Uint8Array, m: RawMutation): Uint8Array {
  const text = new TextDecoder().decode(bytes);
  switch (m.kind) {
    case 'flip': {
      const out = bytes.slice();
      const i = m.at % out.length;
      out[i] = (out[i] as number) ^ (1 << m.bit);
      return out;
    }
    case 'truncate':
      return bytes.slice(0, m.at % bytes.length);
    case 'extend':
      return concat(bytes, m.tail);
    case 'prefix':
      return concat(m.head, bytes);
    case 'splice': {
      const i = m.at % bytes.length;
      return concat(concat(bytes.slice(0, i), m.bytes), bytes.slice(i));
    }
    case 'duplicateKey': {
      const other =
        m.key === 'sig'
          ? JSON.stringify('0'.repeat(128))
          : m.key === 'from'
            ? JSON.stringify('0'.repeat(64))
            : m.key === 'type'
              ? '"heartbeat"'
              : m.key === 'v'
                ? '2'
                : '{}';
      const inner = text.slice(1, -1);
      // The hostile copy first (JSON.parse keeps the last: the packet as signed) or last.
      return utf8(m.first ? `{"${m.key}":${other},${inner}}` : `{${inner},"${m.key}":${other}}`);
    }
    case 'nest': {
      const deep = `${'['.repeat(m.depth)}${']'.repeat(m.depth)}`;
      if (m.where === 'whole') return utf8(deep);
      if (m.where === 'unknown-field') return utf8(text.replace('"body":{', `"body":{"zz":${deep},`));
      return utf8(replaceMember(text, 'createdAt', deep));
    }
    case 'number':
      return utf8(replaceMember(text, m.field, m.literal));
    case 'loneSurrogate': {
      const re = new RegExp(`"${m.field}":"`);
      return utf8(text.replace(re, `"${m.field}":"\\ud800`));
    }
    case 'oversize':
      return concat(bytes, new Uint8Array(LIMITS.maxPacketBytes + m.extra).fill(0x20));
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** A semantic mutation: the body changed, then signed again by a real (hostile) key. */
export type SemanticMutation =
  | { kind: 'outOfRange'; path: string; value: unknown }
  | { kind: 'unknownField'; path: string; name: string }
  | { kind: 'skew'; offset: number }
  | { kind: 'requestId'; value: string }
  | { kind: 'manyMembers'; count: number }
  | { kind: 'bigOutput'; chars: number }
  | { kind: 'wrongType'; as: string };

/** What the intake must answer to a semantic mutation of a packet of `type`. */
export type Expected = { accept: true } | { accept: false; reasons: readonly string[] };

const OUT_OF_RANGE: Array<{ type: PacketType; path: string; value: unknown }> = [
  { type: 'request', path: 'params.temperature', value: 2.5 },
  { type: 'request', path: 'params.temperature', value: -0.1 },
  { type: 'request', path: 'params.maxTokens', value: 0 },
  { type: 'request', path: 'params.maxTokens', value: 4097 },
  { type: 'request', path: 'params.maxTokens', value: 1.5 },
  { type: 'request', path: 'frame.quorum', value: 0 },
  { type: 'request', path: 'frame.maxCommits', value: 1e9 },
  { type: 'request', path: 'acceptedModels', value: [] },
  { type: 'request', path: 'acceptedModels', value: ['m', 'm'] },
  { type: 'request', path: 'nonce', value: 'XY'.repeat(16) },
  { type: 'commit', path: 'commitment', value: 'AB'.repeat(32) },
  { type: 'commit', path: 'createdAt', value: -1 },
  { type: 'commit', path: 'createdAt', value: 2 ** 53 },
  { type: 'commit', path: 'createdAt', value: T0 + 0.5 },
  { type: 'seal', path: 'members', value: [] },
  { type: 'reveal', path: 'bEmbedding', value: 'abc' },
  { type: 'reveal', path: 'salt', value: '00' },
  { type: 'reveal', path: 'finishReason', value: 'stop' },
  { type: 'verdict', path: 'verdict.bits', value: 7 },
  { type: 'verdict', path: 'verdict.status', value: 'maybe' },
  { type: 'verdict', path: 'verdict.v', value: 2 },
  { type: 'attestation', path: 'verdictDigest', value: null },
  { type: 'heartbeat', path: 'role', value: 'god' },
  { type: 'heartbeat', path: 'capacity.queued', value: 1e7 },
  { type: 'heartbeat', path: 'software', value: 'x'.repeat(65) },
  { type: 'heartbeat', path: 'addresses', value: Array(17).fill('a') },
];

export function semanticMutation(type: PacketType): fc.Arbitrary<SemanticMutation> {
  const ranges = OUT_OF_RANGE.filter((r) => r.type === type || r.path === 'createdAt');
  const skew = LIMITS.defaultSkewMs;
  return fc.oneof(
    fc.constantFrom(...ranges).map((r) => ({ kind: 'outOfRange' as const, path: r.path, value: r.value })),
    fc.record({
      kind: fc.constant('unknownField' as const),
      path: fc.constantFrom('', ...(type === 'request' ? ['params', 'frame', 'origin'] : [])),
      name: fc.constantFrom('tip', '__proto__', 'constructor', 'toString', 'createdat', ''),
    }),
    fc.record({
      kind: fc.constant('skew' as const),
      offset: fc.oneof(
        fc.constantFrom(-skew - 1, -skew, -skew + 1, skew - 1, skew, skew + 1, 0),
        fc.integer({ min: -2 * skew, max: 2 * skew }),
      ),
    }),
    fc.record({
      kind: fc.constant('requestId' as const),
      value: fc.constantFrom(
        'AB'.repeat(32),
        'ab'.repeat(31),
        'ab'.repeat(33),
        '',
        `1:0x${'ab'.repeat(20)}:1`,
        `01:0x${'ab'.repeat(20)}:1`,
        `1:0x${'AB'.repeat(20)}:1`,
        `${'9'.repeat(21)}:0x${'ab'.repeat(20)}:1`,
        `1:0x${'ab'.repeat(20)}:${'9'.repeat(79)}`,
        `1:0x${'ab'.repeat(20)}:1\n`,
        `${'ab'.repeat(32)}\n`,
      ),
    }),
    fc.record({ kind: fc.constant('manyMembers' as const), count: fc.constantFrom(129, 1_000, 10_000) }),
    fc.record({
      kind: fc.constant('bigOutput' as const),
      chars: fc.constantFrom(LIMITS.maxOutputChars + 1, 300_000, 10 * 1024 * 1024),
    }),
    fc.record({
      kind: fc.constant('wrongType' as const),
      as: fc.constantFrom('commits', 'Commit', '', 'x'.repeat(40)),
    }),
  );
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] as Record<string, unknown>;
  const last = parts[parts.length - 1] as string;
  if (value === undefined) delete o[last];
  else Object.defineProperty(o, last, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Apply a semantic mutation to a valid body of `type` and sign the result with `key`. Returns the
 * bytes, the topic to send them on, and what the intake must answer at receiver time `now`.
 */
export async function applySemantic(
  key: NodeKey,
  type: PacketType,
  n: number,
  m: SemanticMutation,
  now = T0,
): Promise<{ bytes: Uint8Array; topic: ContentTopic; expected: Expected; id: string } | null> {
  const { deriveRequestId } = await import('@synod/shared');
  const body = structuredClone(validBodies(n, now)[type]);
  let signType: string = type;
  let expected: Expected;
  const rederive = () => {
    if (type !== 'request') return;
    const { requestId: _drop, ...rest } = body;
    body.requestId = deriveRequestId(rest as Parameters<typeof deriveRequestId>[0]);
  };
  switch (m.kind) {
    case 'outOfRange':
      setPath(body, m.path, m.value);
      rederive();
      expected = { accept: false, reasons: ['PACKET_INVALID_FIELD'] };
      break;
    case 'unknownField': {
      rederive();
      const target = m.path === '' ? body : (body[m.path] as Record<string, unknown>);
      Object.defineProperty(target, m.name, {
        value: 1,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      expected = { accept: false, reasons: ['PACKET_UNKNOWN_FIELD'] };
      break;
    }
    case 'skew': {
      body.createdAt = now + m.offset;
      rederive();
      const skew = LIMITS.defaultSkewMs;
      expected =
        m.offset < -skew
          ? { accept: false, reasons: ['PACKET_STALE'] }
          : m.offset > skew
            ? { accept: false, reasons: ['PACKET_FROM_FUTURE'] }
            : { accept: true };
      break;
    }
    case 'requestId': {
      body.requestId = m.value;
      if (type === 'verdict') (body.verdict as Record<string, unknown>).requestId = m.value;
      const chainForm = /^(\d{1,20}):(0x[0-9a-f]{40}):(\d{1,78})$/.test(m.value);
      expected =
        type === 'heartbeat'
          ? { accept: false, reasons: ['PACKET_UNKNOWN_FIELD'] }
          : chainForm
            ? type === 'request'
              ? { accept: false, reasons: ['REQUEST_ID_MISMATCH'] }
              : { accept: true }
            : { accept: false, reasons: ['PACKET_INVALID_FIELD'] };
      break;
    }
    case 'manyMembers': {
      const members = Array.from({ length: m.count }, (_, i) => ({
        nodeId: hex64(0x1000 + i),
        commitment: hex64(i),
        commitId: hex64(i + 1),
      }));
      if (type === 'seal') body.members = members;
      else if (type === 'verdict')
        (body.verdict as Record<string, unknown>).accepted = members.map(({ nodeId, commitment }) => ({
          nodeId,
          commitment,
        }));
      else body.members = members;
      const size = utf8(JSON.stringify(body)).length;
      expected =
        size > LIMITS.maxPacketBytes
          ? { accept: false, reasons: ['PACKET_TOO_LARGE'] }
          : type === 'seal' || type === 'verdict'
            ? { accept: false, reasons: ['PACKET_INVALID_FIELD'] }
            : { accept: false, reasons: ['PACKET_UNKNOWN_FIELD'] };
      rederive();
      break;
    }
    case 'bigOutput': {
      const output = 'o'.repeat(m.chars);
      if (type === 'verdict')
        ((body.verdict as Record<string, unknown>).winner as Record<string, unknown>).output = output;
      else body.output = output;
      rederive();
      const size = m.chars + 1000;
      expected =
        size > LIMITS.maxPacketBytes
          ? { accept: false, reasons: ['PACKET_TOO_LARGE'] }
          : type === 'reveal' || type === 'verdict'
            ? { accept: false, reasons: ['PACKET_INVALID_FIELD'] }
            : { accept: false, reasons: ['PACKET_UNKNOWN_FIELD'] };
      break;
    }
    case 'wrongType':
      rederive();
      signType = m.as;
      expected = {
        accept: false,
        reasons: m.as.length > 32 ? ['PACKET_MALFORMED'] : ['PACKET_UNKNOWN_TYPE'],
      };
      break;
  }
  const signed = await signRaw(key, signType, body);
  if (signed === null) return null;
  return { ...signed, topic: topicOfPacketType(type), expected };
}
