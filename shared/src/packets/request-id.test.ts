import { describe, expect, test } from 'bun:test';
import { canonicalJson } from '../encoding/canonical.ts';
import { deriveRequestId, withRequestId } from './request-id.ts';
import type { RequestBody } from './schemas.ts';
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
