import { describe, expect, test } from 'bun:test';
import { canonicalJson } from '../encoding/canonical.ts';
import { deriveRequestId, withRequestId } from './request-id.ts';
import { REQUEST_ID_MAX_CHARS, type RequestBody, RequestIdSchema } from './schemas.ts';
import { requestBody } from './test-helpers.ts';

function content(b: RequestBody): Omit<RequestBody, 'requestId'> {
  const { requestId: _drop, ...rest } = b;
  return rest;
}

describe('withRequestId', () => {
  test('the id is deriveRequestId, the text is the canonical JSON of the whole body', () => {
    const cases = [
      content(requestBody()),
      content(requestBody({ prompt: undefined, messages: [{ role: 'user', content: 'hi "there"\n' }] })),
      content(requestBody({ params: { maxTokens: 8, temperature: 0.5, seed: 7, topP: 0.9, topK: 40 } })),
      content(
        requestBody({
          origin: {
            kind: 'chain',
            chainId: 31337,
            contract: `0x${'ab'.repeat(20)}`,
            requestNo: '12',
            txHash: `0x${'cd'.repeat(32)}`,
            blockNumber: 5,
          },
        }),
      ),
    ];
    for (const c of cases) {
      // Whatever the member order it was built in.
      const shuffled = Object.fromEntries(Object.entries(c).reverse()) as typeof c;
      for (const input of [c, shuffled]) {
        const { body, json } = withRequestId(input);
        expect(body.requestId).toBe(deriveRequestId(input));
        expect(json).toBe(canonicalJson(body));
        expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(body)));
      }
    }
  });

  test('a whole body passed in: its old requestId is not hashed, as in deriveRequestId', () => {
    const whole = requestBody({ requestId: 'ab'.repeat(32) });
    const { body, json } = withRequestId(whole);
    expect(body.requestId).toBe(deriveRequestId(whole));
    expect(body.requestId).toBe(deriveRequestId(content(whole)));
    expect(json).toBe(canonicalJson(body));
  });
});

describe('RequestIdSchema', () => {
  test('takes a 64-hex id and a chain id up to the longest CHAIN_REQUEST_ID_RE matches', () => {
    const longest = `${'9'.repeat(20)}:0x${'ab'.repeat(20)}:${'9'.repeat(78)}`;
    expect(longest.length).toBe(REQUEST_ID_MAX_CHARS);
    expect(RequestIdSchema.safeParse(longest).success).toBe(true);
    expect(RequestIdSchema.safeParse('a'.repeat(64)).success).toBe(true);
    expect(RequestIdSchema.safeParse(`1:0x${'ab'.repeat(20)}:1`).success).toBe(true);
  });

  test('refuses anything else', () => {
    for (const bad of [
      `${'9'.repeat(21)}:0x${'ab'.repeat(20)}:1`,
      `1:0x${'ab'.repeat(20)}:${'9'.repeat(79)}`,
      `1:0x${'AB'.repeat(20)}:1`,
      'A'.repeat(64),
      'a'.repeat(63),
      '',
    ]) {
      expect(RequestIdSchema.safeParse(bad).success).toBe(false);
    }
  });
});
