import { expect, test } from 'bun:test';
import { type DeclineBody, NodeKey, packetId, signPacket } from '@synod/shared';
import { testRequest } from '../../../browser-node/src/node/test-request.ts';
import { checkDeclines } from './declines.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const key = (n: number) => NodeKey.fromSeed(new Uint8Array(32).fill(n));

async function setup() {
  const body = testRequest({ embedder, nonce: 7, frame: { quorum: 2, maxCommits: 2 } });
  const request = await signPacket(await key(1), 'request', body);
  const decline = async (n: number, over: Partial<DeclineBody> = {}) =>
    signPacket(await key(n), 'decline', {
      requestId: body.requestId,
      requestPacketId: packetId(request),
      model: { id: 'm', fileHash: 'ab'.repeat(32) },
      reason: 'context-exceeded',
      promptTokens: 3_000,
      contextTokens: 2_048,
      createdAt: body.createdAt + 10,
      ...over,
    });
  return { body, request, decline };
}

test('counts distinct nodes whose signed decline names the request packet and one of its models', async () => {
  const { body, request, decline } = await setup();
  const a = await decline(2);
  const tampered = { ...(await decline(3)), body: { ...(await decline(3)).body, promptTokens: 9_999 } };
  const check = await checkDeclines(
    request,
    [
      a,
      a, // the same node twice
      await decline(4, { contextTokens: 4_096, promptTokens: 4_100 }),
      tampered,
      await decline(5, { requestPacketId: 'cd'.repeat(32) }),
      await decline(6, { model: { id: 'other', fileHash: 'ab'.repeat(32) } }),
      await signPacket(await key(7), 'commit', {
        requestId: body.requestId,
        commitment: 'ef'.repeat(32),
        createdAt: 1,
      }),
      { not: 'a packet' },
    ],
    body.requestId,
  );
  expect(check.request).toMatchObject({ id: packetId(request), quorum: 2, acceptedModels: ['m'] });
  expect(check.nodes).toBe(2);
  expect(check.models).toEqual(['m']);
  expect(check.closest).toEqual({ model: 'm', promptTokens: 4_100, contextTokens: 4_096 });
  expect(check.invalid.map((x) => x.why)).toEqual([
    'a second decline from the same node',
    'its signature does not verify',
    'it declines another request packet',
    'the request does not accept model other',
    'a commit packet, not a decline',
    expect.stringMatching(/^malformed: /),
  ]);
});

test('a request packet that is not the request, or altered, is said as such and nothing is counted', async () => {
  const { body, request, decline } = await setup();
  const declines = [await decline(2), await decline(3)];
  const other = await checkDeclines(request, declines, 'ab'.repeat(32));
  expect(other).toMatchObject({ request: null, nodes: 0 });
  expect(other.requestProblem).toStartWith('the request packet of ');
  // Its content altered: its id no longer derives from it (or, signed again by another key, the
  // declines name another packet).
  const altered = await checkDeclines(
    { ...request, body: { ...request.body, prompt: 'something else' } },
    declines,
    body.requestId,
  );
  expect(altered).toMatchObject({ request: null, nodes: 0 });
  expect(altered.requestProblem).toBe('malformed: requestId is not derived from the request content');
  const resigned = await signPacket(await key(9), 'request', body);
  const elsewhere = await checkDeclines(resigned, declines, body.requestId);
  expect(elsewhere.nodes).toBe(0);
  expect(elsewhere.invalid.map((x) => x.why)).toEqual([
    'it declines another request packet',
    'it declines another request packet',
  ]);
  // A signature that does not verify over the same content.
  const forged = await checkDeclines({ ...request, sig: 'ab'.repeat(64) }, declines, body.requestId);
  expect(forged.requestProblem).toBe("the request packet's signature does not verify");
});
