/**
 * A sealed member may sign several reveals that differ only in createdAt (all valid). The coordinator
 * counts the one with the smallest id among those it held; a follower may hold a different pair. A
 * transcript root it cannot reproduce (the verdict names no accepted member's reveal) is then no proof
 * that the coordinator lied: it waits for the missing reveal (and ends `unverified` without it), it does
 * not call the verdict a mismatch, let alone emit evidence.
 */
import { describe, expect, test } from 'bun:test';
import { compareStrings } from '../encoding/bytes.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/schemas.ts';
import { decide, receive } from './common.ts';
import { initFollower, stepFollower } from './follower.ts';
import { makeRequest, signedCommit, signedReveal, signedSeal, T0, testKey } from './sim.test-helpers.ts';
import type { Effect, Received } from './types.ts';

const SEAL_AT = T0 + 2_000;

async function world(label: string) {
  const ck = await testKey('coordinator');
  const keys = await Promise.all([0, 1, 2].map((i) => testKey(`node${i}`)));
  const request = makeRequest({ frame: { quorum: 3, maxCommits: 3 }, label });
  const requestPacket = await signPacket(ck, 'request', request);
  const commits = await Promise.all(keys.map((k) => signedCommit(k, request, T0 + 1_000)));
  const seal = await signedSeal(ck, requestPacket, commits, SEAL_AT);
  const honest = await Promise.all(keys.slice(1).map((k) => signedReveal(k, request, SEAL_AT + 100)));
  // node0 reveals three times, one millisecond apart: three valid reveals, sorted by packet id.
  const repeated = (
    await Promise.all([1, 2, 3].map((i) => signedReveal(keys[0]!, request, SEAL_AT + 100 + i)))
  ).sort((a, b) => compareStrings(packetId(a), packetId(b)));
  /** The coordinator's verdict packet over the reveals it held. */
  const verdictOver = async (reveals: Packet<'reveal'>[], root?: string) => {
    const r = decide(
      receive(requestPacket) as Received<'request'>,
      commits.map(receive) as Received<'commit'>[],
      receive(seal) as Received<'seal'>,
      reveals.map(receive) as Received<'reveal'>[],
    );
    return signPacket(ck, 'verdict', {
      requestId: request.requestId,
      verdict: r.verdict,
      verdictDigest: r.digest,
      transcriptRoot: root ?? r.transcriptRoot,
      createdAt: SEAL_AT + 5_000,
    });
  };
  return { request, requestPacket, commits, seal, honest, repeated, verdictOver };
}

async function follow(requestId: string, packets: AnyPacket[]) {
  const me = await testKey('follower');
  const config = { attest: true };
  let s = initFollower(config, { now: T0, self: me.nodeId, requestId }).state;
  const effects: Effect[] = [];
  const step = (event: Parameters<typeof stepFollower>[2]) => {
    const t = stepFollower(config, s, event);
    s = t.state;
    effects.push(...t.effects);
  };
  for (const packet of packets) step({ kind: 'packet', now: T0 + 500, packet });
  return { state: () => s, effects, step };
}

describe('a member that revealed more than once', () => {
  test('the coordinator counted a reveal the follower does not hold: unverified, not a mismatch', async () => {
    const w = await world('repeated-reveals/unheld');
    const [r1, r2, r3] = w.repeated as [Packet<'reveal'>, Packet<'reveal'>, Packet<'reveal'>];
    // The coordinator held r2 and r3 (it counted r2, r3 is its DUPLICATE_REVEAL); the follower r1 and r3.
    const verdict = await w.verdictOver([...w.honest, r2, r3]);
    expect(verdict.body.verdict.rejected.map((r) => [r.reason, r.revealId === packetId(r3)])).toEqual([
      ['DUPLICATE_REVEAL', true],
    ]);
    const f = await follow(w.request.requestId, [
      w.requestPacket,
      ...w.commits,
      w.seal,
      ...w.honest,
      r1,
      r3,
      verdict,
    ]);
    expect(f.effects.filter((e) => e.kind === 'rejected')).toEqual([]);
    expect(f.state().outcome).toBeNull();
    expect(f.state().verification).toBe('digest');
    f.step({ kind: 'timer', name: 'verify-wait', now: T0 + 6_000 });
    expect(f.state().outcome).toMatchObject({ kind: 'done', reason: 'unverified' });
    expect(f.effects.some((e) => e.kind === 'publish')).toBe(false);
  });

  test('the counted reveal is not held but a later one is: no evidence against the coordinator', async () => {
    const w = await world('repeated-reveals/later');
    const [r1, r2, r3] = w.repeated as [Packet<'reveal'>, Packet<'reveal'>, Packet<'reveal'>];
    // The coordinator held r1 and r2 (it counted r1, r2 is its DUPLICATE_REVEAL); the follower r2 and
    // r3. Recomputed over r2 and r3 the verdict would name r3 as the duplicate: a different digest,
    // which is no proof, since the coordinator never held r3.
    const verdict = await w.verdictOver([...w.honest, r1, r2]);
    const f = await follow(w.request.requestId, [
      w.requestPacket,
      ...w.commits,
      w.seal,
      ...w.honest,
      r2,
      r3,
      verdict,
    ]);
    expect(f.effects.filter((e) => e.kind === 'evidence' || e.kind === 'rejected')).toEqual([]);
    expect(f.state().verification).toBe('digest');
    f.step({ kind: 'packet', now: T0 + 600, packet: r1 }); // a third reveal of node0: no room
    f.step({ kind: 'timer', name: 'verify-wait', now: T0 + 6_000 });
    expect(f.state().outcome).toMatchObject({ kind: 'done', reason: 'unverified' });
  });

  test('holding the reveal the coordinator counted, the follower verifies and attests', async () => {
    const w = await world('repeated-reveals/held');
    const [, r2, r3] = w.repeated as [Packet<'reveal'>, Packet<'reveal'>, Packet<'reveal'>];
    const verdict = await w.verdictOver([...w.honest, r2, r3]);
    const f = await follow(w.request.requestId, [
      w.requestPacket,
      ...w.commits,
      w.seal,
      ...w.honest,
      r3,
      r2,
      verdict,
    ]);
    expect(f.state().outcome).toMatchObject({ kind: 'done', reason: 'verified' });
    expect(f.effects.filter((e) => e.kind === 'publish').map((e) => e.kind)).toEqual(['publish']);
  });

  test('a member the coordinator held one valid reveal of, the follower another: unverified, not a mismatch', async () => {
    const w = await world('repeated-reveals/disjoint');
    const [r1, r2] = w.repeated as [Packet<'reveal'>, Packet<'reveal'>];
    // Nothing in the verdict says node0 revealed twice: the coordinator held r2 alone, the follower r1.
    const verdict = await w.verdictOver([...w.honest, r2]);
    expect(verdict.body.verdict.rejected).toEqual([]);
    const f = await follow(w.request.requestId, [
      w.requestPacket,
      ...w.commits,
      w.seal,
      ...w.honest,
      r1,
      verdict,
    ]);
    expect(f.effects.filter((e) => e.kind === 'evidence' || e.kind === 'rejected')).toEqual([]);
    expect(f.state().verification).toBe('digest');
    f.step({ kind: 'timer', name: 'verify-wait', now: T0 + 6_000 });
    expect(f.state().outcome).toMatchObject({ kind: 'done', reason: 'unverified' });
    expect(f.effects.some((e) => e.kind === 'publish')).toBe(false);
  });
});

describe('a verdict whose digest recomputes but whose transcript root is forged', () => {
  test('is never verified nor attested: the follower ends unverified (it cannot tell it from a reveal it lacks)', async () => {
    const w = await world('repeated-reveals/forged-root');
    const verdict = await w.verdictOver([...w.honest, w.repeated[0] as Packet<'reveal'>], 'ab'.repeat(32));
    const f = await follow(w.request.requestId, [
      w.requestPacket,
      ...w.commits,
      w.seal,
      ...w.honest,
      w.repeated[0] as AnyPacket,
      verdict,
    ]);
    expect(f.state().verification).toBe('digest');
    f.step({ kind: 'timer', name: 'verify-wait', now: T0 + 6_000 });
    expect(f.state().outcome).toMatchObject({ kind: 'done', reason: 'unverified' });
    // No attestation stands behind the forged root.
    expect(f.effects.some((e) => e.kind === 'publish')).toBe(false);
  });
});
