import { describe, expect, test } from 'bun:test';
import {
  type AnyPacket,
  type CoordinatorState,
  computeCommitment,
  NodeKey,
  type Packet,
  packetId,
  signPacket,
  startCoordinator,
  stepCoordinator,
  toHex,
} from '@synod/shared';
import { ReembedQueue, textToReembed } from './reembed-queue.ts';
import { recordingEmbedder } from './test-embedder.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const MODEL = { id: 'm', fileHash: '22'.repeat(32) };

/** A queue over the recording double, its bits as hex. */
function queueOver(double: ReturnType<typeof recordingEmbedder>) {
  return new ReembedQueue({ embed: async (text) => toHex(await double.embed(text)) });
}

describe('ReembedQueue: one embedding at a time, the shortest text first', () => {
  test('texts queued behind a running embedding go shortest first, ties in arrival order', async () => {
    const double = recordingEmbedder({ held: true });
    const queue = queueOver(double);
    const [long, x, y, mid] = [
      'a long text '.repeat(500),
      'x'.repeat(2_000),
      'y'.repeat(2_000),
      'mid '.repeat(20),
    ];
    const texts = [long, x, 'short', y, mid];
    const all = Promise.all(texts.map((t) => queue.bits(t, 'r')));
    // The first runs at once (nothing else was queued); the others wait, counted.
    await until(() => double.calls.length === 1, 1_000);
    expect(queue.depth()).toEqual({ texts: 5, chars: texts.reduce((n, t) => n + t.length, 0) });
    double.release();
    await all;
    expect(double.calls).toEqual([long, 'short', mid, x, y]);
    expect(double.maxRunning).toBe(1);
    expect(queue.depth()).toEqual({ texts: 0, chars: 0 });
  });

  test('an honest short answer queued after many long texts is embedded next', async () => {
    const double = recordingEmbedder({ held: true });
    const queue = queueOver(double);
    const long = Array.from({ length: 12 }, (_, i) => `${i} ${'w'.repeat(65_000)}`);
    const waiting = long.map((t) => queue.bits(t, `attack-${t.length}`));
    const honest = queue.bits('The cat sat on the mat.', 'honest');
    double.release();
    await Promise.all([...waiting, honest]);
    expect(double.calls.indexOf('The cat sat on the mat.')).toBe(1);
    expect(double.calls).toHaveLength(13);
  });

  test('reveals of one text share one embedding, queued, running or cached', async () => {
    const double = recordingEmbedder({ held: true, bitsOf: (t) => new Uint8Array(64).fill(t.length) });
    const queue = queueOver(double);
    const first = queue.bits('same text', 'r1');
    await until(() => double.calls.length === 1, 1_000);
    const whileRunning = queue.bits('same text', 'r2');
    const other = queue.bits('another text', 'r3');
    const whileQueued = queue.bits('another text', 'r4');
    expect(queue.depth().texts).toBe(2);
    double.release();
    const bits = await Promise.all([first, whileRunning, other, whileQueued]);
    expect(bits).toEqual([
      toHex(new Uint8Array(64).fill(9)),
      toHex(new Uint8Array(64).fill(9)),
      toHex(new Uint8Array(64).fill(12)),
      toHex(new Uint8Array(64).fill(12)),
    ]);
    // Later: from the cache.
    expect(await queue.bits('same text', 'r5')).toBe(bits[0] as string);
    expect(double.calls).toEqual(['same text', 'another text']);
  });

  test('a failed embedding fails every reveal waiting for it, and is not kept', async () => {
    let failing = true;
    const double = recordingEmbedder({ held: true, fails: () => failing });
    const queue = queueOver(double);
    const a = queue.bits('text', 'r1');
    const b = queue.bits('text', 'r2');
    double.release();
    const [ra, rb] = await Promise.allSettled([a, b]);
    expect(ra).toMatchObject({ status: 'rejected', reason: { message: 'no embedding for text' } });
    expect(rb).toMatchObject({ status: 'rejected', reason: { message: 'no embedding for text' } });
    failing = false;
    expect(await queue.bits('text', 'r3')).toBe(toHex(new Uint8Array(64).fill(1)));
    expect(double.calls).toEqual(['text', 'text']);
  });

  test('close refuses what has not started (NODE_CLOSED); the running one ends as it ends', async () => {
    const double = recordingEmbedder({ held: true });
    const queue = queueOver(double);
    const running = queue.bits('running', 'r1');
    const waiting = queue.bits('waiting', 'r2');
    await until(() => double.calls.length === 1, 1_000);
    queue.close();
    await expect(waiting).rejects.toMatchObject({ code: 'NODE_CLOSED' });
    await expect(queue.bits('later', 'r3')).rejects.toMatchObject({ code: 'NODE_CLOSED' });
    double.release();
    expect(await running).toBe(toHex(new Uint8Array(64).fill(1)));
    expect(double.calls).toEqual(['running']);
  });
});

/**
 * A coordinator of a request (quorum 2, reveal window 5 s) sealed with two members' commits, its own
 * packets fed back signed; `reveal` signs a member's (or anyone's) reveal of `output`.
 */
async function sealedCoordinator() {
  const now = Date.now();
  const ck = await NodeKey.fromSeed(new Uint8Array(32).fill(70));
  const [a, b, outsider] = await Promise.all(
    [71, 72, 73].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(i))),
  );
  const members = [a, b] as NodeKey[];
  const request = testRequest({
    embedder,
    nonce: 0x5eed,
    frame: { quorum: 2, maxCommits: 2, revealWindowMs: 5_000 },
    createdAt: now,
  });
  const requestId = request.requestId;
  const bEmbedding = '01'.repeat(64);
  const salt = '02'.repeat(32);
  let t = startCoordinator({}, { now, self: ck.nodeId, request });
  const states: CoordinatorState[] = [];
  const feed = async (packet: AnyPacket, at: number): Promise<void> => {
    t = stepCoordinator({}, t.state as CoordinatorState, { kind: 'packet', now: at, packet });
    states.push(t.state as CoordinatorState);
    for (const e of t.effects) {
      if (e.kind === 'publish')
        await feed((await signPacket(ck, e.packetType, e.body as never)) as AnyPacket, at);
    }
  };
  for (const e of t.effects) {
    if (e.kind === 'publish')
      await feed((await signPacket(ck, e.packetType, e.body as never)) as AnyPacket, now);
  }
  const collecting = t.state as CoordinatorState;
  for (const key of members) {
    const output = `answer of ${key.nodeId.slice(0, 8)}`;
    const commitment = computeCommitment({
      requestId,
      nodeId: key.nodeId,
      model: MODEL,
      output,
      bEmbedding,
      salt,
    });
    await feed(await signPacket(key, 'commit', { requestId, commitment, createdAt: now + 100 }), now + 100);
  }
  const sealed = t.state as CoordinatorState;
  if (sealed.phase !== 'sealed' || sealed.seal?.packet == null) throw new Error('not sealed');
  const sealedAt = sealed.seal.body.createdAt;
  const reveal = (key: NodeKey, o: { createdAt?: number; salt?: string } = {}) =>
    signPacket(key, 'reveal', {
      requestId,
      output: `answer of ${key.nodeId.slice(0, 8)}`,
      bEmbedding,
      model: MODEL,
      salt: o.salt ?? salt,
      createdAt: o.createdAt ?? sealedAt + 1_000,
    });
  return { collecting, sealed, sealedAt, members, outsider: outsider as NodeKey, reveal };
}

describe('textToReembed: a reveal the machine would reject without its bits is not embedded', () => {
  test('only an on-time reveal that opens its sealed member commitment, under the pinned embedder', async () => {
    const c = await sealedCoordinator();
    const [a, b] = c.members as [NodeKey, NodeKey];
    const honest = await c.reveal(a);
    expect(textToReembed(c.sealed, honest, embedder)).toBe(honest.body.output);
    // At the end of its window still; one millisecond past it, REVEAL_LATE whatever its bits.
    expect(
      textToReembed(c.sealed, await c.reveal(b, { createdAt: c.sealedAt + 5_000 }), embedder),
    ).not.toBeNull();
    expect(
      textToReembed(c.sealed, await c.reveal(b, { createdAt: c.sealedAt + 5_001 }), embedder),
    ).toBeNull();
    // Not opening its commitment; not a sealed member's.
    expect(textToReembed(c.sealed, await c.reveal(b, { salt: '03'.repeat(32) }), embedder)).toBeNull();
    expect(textToReembed(c.sealed, await c.reveal(c.outsider), embedder)).toBeNull();
    // Another embedder pinned (another file, or more bits than this one gives).
    expect(textToReembed(c.sealed, honest, { ...embedder, fileHash: '33'.repeat(32) })).toBeNull();
    expect(textToReembed(c.sealed, honest, { ...embedder, bits: 256 })).toBeNull();
    // Held with bits already; not sealed yet; the verdict out.
    const held: CoordinatorState = { ...c.sealed, reembedded: { [packetId(honest)]: '00'.repeat(64) } };
    expect(textToReembed(held, honest, embedder)).toBeNull();
    expect(textToReembed(c.collecting, honest, embedder)).toBeNull();
    expect(textToReembed({ ...c.sealed, phase: 'verdict' }, honest, embedder)).toBeNull();
    // Another request's reveal.
    const other = { ...honest, body: { ...honest.body, requestId: 'ab'.repeat(32) } } as Packet<'reveal'>;
    expect(textToReembed(c.sealed, other, embedder)).toBeNull();
  });
});
