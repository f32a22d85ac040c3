import { describe, expect, test } from 'bun:test';
import { OriginSchema } from '@synod/shared';
import { encodeAbiParameters, type Hex, keccak256, parseAbiParameters, toHex } from 'viem';
import { buildRequest } from '../inference-input.ts';
import { TEST_EMBEDDER } from '../store/test-admissions.ts';
import {
  bytes32,
  chainOrigin,
  chainRequestIdOf,
  decodedAsAsked,
  type FoundView,
  type OracleRequestEvent,
  oracleRequestInput,
  refundReason,
  sameRequest,
  settlementFor,
} from './oracle-request.ts';

const EVENT: OracleRequestEvent = {
  chainId: 31337,
  contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  requestNo: 7n,
  requester: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  prompt: 'Once upon a time',
  acceptedModels: ['stories260K'],
  maxTokens: 24,
  temperatureCenti: 70,
  quorum: 5,
  fee: 1_000n,
  deadline: 1_800_000_000n,
  questionHash: `0x${'ee'.repeat(32)}`,
  txHash: `0x${'AB'.repeat(32)}`,
  logIndex: 3,
  blockNumber: 12n,
  blockHash: `0x${'cd'.repeat(32)}`,
};

const DEFAULTS = {
  knownModels: new Set(['stories260K']),
  defaultModels: ['stories260K'],
  embedders: [TEST_EMBEDDER],
};
const random = (n: number) => new Uint8Array(n).fill(1);

describe('an oracle event as a network request', () => {
  test('its id is chainId:contract:requestNo, the contract in lowercase', () => {
    expect(chainRequestIdOf(EVENT)).toBe('31337:0x5fbdb2315678afecb367f032d93f642f64180aa3:7');
  });

  test('its origin is a valid chain origin (lowercase hex, decimal request number)', () => {
    const o = chainOrigin(EVENT);
    expect(OriginSchema.parse(o)).toEqual({
      kind: 'chain',
      chainId: 31337,
      contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
      requestNo: '7',
      txHash: `0x${'ab'.repeat(32)}`,
      blockNumber: 12,
    });
  });

  test('the relay builds it like an HTTP request: prompt, models, params, quorum, chain origin', () => {
    const { body, json } = buildRequest(
      oracleRequestInput(EVENT),
      DEFAULTS,
      1_000,
      random,
      chainOrigin(EVENT),
    );
    expect(body.requestId).toBe(chainRequestIdOf(EVENT));
    expect(body.prompt).toBe('Once upon a time');
    expect(body.acceptedModels).toEqual(['stories260K']);
    expect(body.params).toEqual({ maxTokens: 24, temperature: 0.7 });
    expect(body.frame.quorum).toBe(5);
    expect(body.frame.maxCommits).toBe(5);
    expect(body.origin).toEqual(chainOrigin(EVENT));
    expect(JSON.parse(json)).toEqual(body);
  });

  test('an event the relay cannot serve is refused with the HTTP path’s codes', () => {
    const code = (e: OracleRequestEvent) => {
      try {
        buildRequest(oracleRequestInput(e), DEFAULTS, 1_000, random, chainOrigin(e));
        return 'built';
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    expect(code({ ...EVENT, acceptedModels: ['gpt-unknown'] })).toBe('UNKNOWN_MODEL');
    expect(code({ ...EVENT, temperatureCenti: 250 })).toBe('INVALID_INPUT');
    expect(code({ ...EVENT, quorum: 65 })).toBe('FRAME_OUT_OF_RANGE');
  });
});

const held = (over: Partial<FoundView['request']> = {}): FoundView['request'] => {
  const { body } = buildRequest(oracleRequestInput(EVENT), DEFAULTS, 1_000, random, chainOrigin(EVENT));
  return {
    packetId: 'p',
    acceptedModels: body.acceptedModels,
    params: body.params,
    frame: body.frame,
    origin: body.origin,
    prompt: body.prompt ?? '',
    ...over,
  };
};

describe('sameRequest (a reorg may give a request number to another request)', () => {
  test('its transaction mined again, in another block, is the same request', () => {
    expect(sameRequest(held(), { ...EVENT, blockNumber: 20n, logIndex: 5 })).toBe(true);
    // The event's hash in any case (the held origin is lowercase).
    expect(sameRequest(held(), { ...EVENT, txHash: EVENT.txHash.toLowerCase() as never })).toBe(true);
  });

  test('the same question in another transaction is not: the request signed for the first names it', () => {
    expect(sameRequest(held(), { ...EVENT, txHash: `0x${'ef'.repeat(32)}`, blockNumber: 20n })).toBe(false);
    expect(sameRequest(held({ origin: { kind: 'http' } }), EVENT)).toBe(false);
  });

  test('any other prompt, model list, token limit, temperature or quorum is not', () => {
    expect(sameRequest(held(), { ...EVENT, prompt: 'Another' })).toBe(false);
    expect(sameRequest(held(), { ...EVENT, acceptedModels: ['stories260K', 'other'] })).toBe(false);
    expect(sameRequest(held(), { ...EVENT, maxTokens: 25 })).toBe(false);
    expect(sameRequest(held(), { ...EVENT, temperatureCenti: 0 })).toBe(false);
    expect(sameRequest(held(), { ...EVENT, quorum: 3 })).toBe(false);
  });
});

describe('settlementFor', () => {
  const digest = 'a'.repeat(64);
  const root = 'b'.repeat(64);
  const verdict = (winner: { output: string } | null) =>
    ({ verdictDigest: digest, transcriptRoot: root, winner }) as unknown as FoundView['verdict'];

  test('a verdict with a winner fulfils with its output, digest and root as bytes32', () => {
    expect(
      settlementFor({ status: 'verdict', error: null, verdict: verdict({ output: 'The end.' }) }),
    ).toEqual({
      kind: 'fulfill',
      answer: 'The end.',
      verdictDigest: `0x${digest}`,
      transcriptRoot: `0x${root}`,
    });
  });

  test('no consensus, expiry and failure refund with their codes; moving requests wait', () => {
    expect(settlementFor({ status: 'verdict', error: null, verdict: verdict(null) })).toEqual({
      kind: 'refund',
      reason: 'NO_CONSENSUS',
    });
    expect(settlementFor({ status: 'no-consensus', error: null, verdict: verdict(null) })).toEqual({
      kind: 'refund',
      reason: 'NO_CONSENSUS',
    });
    expect(settlementFor({ status: 'expired', error: 'QUEUE_TIMEOUT', verdict: null })).toEqual({
      kind: 'refund',
      reason: 'QUEUE_TIMEOUT',
    });
    expect(settlementFor({ status: 'failed', error: null, verdict: null })).toEqual({
      kind: 'refund',
      reason: 'FAILED',
    });
    for (const status of ['queued', 'pending', 'sealed'] as const) {
      expect(settlementFor({ status, error: null, verdict: null })).toEqual({ kind: 'wait' });
    }
    expect(settlementFor(null)).toEqual({ kind: 'wait' });
  });

  test('bytes32 takes a 64-hex digest with or without 0x, and nothing else', () => {
    expect(bytes32(digest)).toBe(`0x${digest}`);
    expect(bytes32(`0x${digest}`)).toBe(`0x${digest}`);
    expect(() => bytes32('abc')).toThrow(TypeError);
    expect(() => bytes32('A'.repeat(64))).toThrow(TypeError);
  });
});

describe('what an event asks, as decoded', () => {
  const asked = {
    requester: EVENT.requester,
    prompt: 'Hi \u{1F600} there',
    acceptedModels: ['stories260K', 'tinyllama-1.1b'],
    maxTokens: 24,
    temperatureCenti: 70,
    quorum: 5,
  };
  // questionHashOf(asked), as the oracle computes it (the ABI encoding of who asks what, hashed).
  const hashOf = (prompt: Hex) =>
    keccak256(
      encodeAbiParameters(parseAbiParameters('address, bytes, string[], uint32, uint16, uint16'), [
        asked.requester,
        prompt,
        asked.acceptedModels,
        asked.maxTokens,
        asked.temperatureCenti,
        asked.quorum,
      ]),
    );

  test('decoded strings that are the bytes asked (any valid UTF-8) match the question hash', () => {
    expect(decodedAsAsked({ ...asked, questionHash: hashOf(toHex(asked.prompt)) })).toBe(true);
    expect(decodedAsAsked({ ...asked, questionHash: hashOf(toHex(asked.prompt)).toUpperCase() as Hex })).toBe(
      true,
    );
  });

  test('a prompt that was not UTF-8 (decoded with U+FFFD) does not', () => {
    // The bytes asked: "Hi \xff\xfe there"; viem decodes them as "Hi \ufffd\ufffd there".
    const questionHash = hashOf('0x486920fffe207468657265');
    expect(decodedAsAsked({ ...asked, prompt: 'Hi \ufffd\ufffd there', questionHash })).toBe(false);
  });

  test('any other field that differs does not', () => {
    const questionHash = hashOf(toHex(asked.prompt));
    expect(decodedAsAsked({ ...asked, quorum: 6, questionHash })).toBe(false);
    expect(decodedAsAsked({ ...asked, acceptedModels: ['stories260K'], questionHash })).toBe(false);
  });
});

describe('a refund reason', () => {
  test('is the stable code when it is one of at most 64 bytes, else FAILED (the oracle reverts longer)', () => {
    expect(refundReason('NO_CONSENSUS')).toBe('NO_CONSENSUS');
    expect(refundReason('X'.repeat(64))).toBe('X'.repeat(64));
    expect(refundReason('X'.repeat(65))).toBe('FAILED');
    expect(refundReason('not a code')).toBe('FAILED');
    expect(refundReason('')).toBe('FAILED');
  });
});
