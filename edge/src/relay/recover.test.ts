/**
 * A relay that restarts restores its coordinator machines as they were last saved; packets its history
 * stored after that (the history stores a packet before the machine takes it, and a save can fail) were
 * missing from them: a request whose commits were all in the history expired QUORUM_NOT_MET. Each
 * restored machine is now given the commits and reveals the history holds for it (`storedPackets`,
 * through `SynodNodeOptions.restoreWith`) before it resumes, so a seal deadline that passed while the
 * relay was down is judged on them too.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryMachineStore, MemoryNetwork, SynodNode } from '@synod/browser-node';
import { NodeKey, packetId, signPacket } from '@synod/shared';
import { testRequest } from '../../../browser-node/src/node/test-request.ts';
import { openHistory } from '../store/open-history.ts';
import { storeRequest } from '../store/test-requests.ts';
import { InProcessRelayNetwork } from './in-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-recover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

describe('InProcessRelayNetwork.recover', () => {
  test('a restored coordinator machine is given the commits the history stored after its last save: it seals', async () => {
    const h = await openHistory(`file:${join(dir, 'relay.db')}`);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(150));
    const members = await Promise.all([151, 152].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(i))));
    const machines = new MemoryMachineStore();
    const net = new MemoryNetwork();
    const body = testRequest({
      embedder,
      nonce: 0x50,
      frame: { quorum: 2, maxCommits: 2, maxTimeMs: 60_000, revealWindowMs: 10_000 },
    });
    // The first run: the request is stored and coordinated; its machine is saved as it starts.
    const first = new SynodNode({ key, role: 'relay', transports: [net.join('relay-1')], store: machines });
    await first.start();
    const { id, packet } = await first.submit(body);
    await storeRequest(h.store, { id, packet }, Date.now());
    await first.settled();
    await first.close();
    // Commits the history stored while the machine never took them (a crash between the two).
    for (const [i, k] of members.entries()) {
      const commit = await signPacket(k, 'commit', {
        requestId: body.requestId,
        commitment: String(i + 1).repeat(64),
        createdAt: Date.now(),
      });
      await h.store.recordCommit({ id: packetId(commit), packet: commit });
    }
    // The restart: the machine is restored from its store, given what the history kept, then recovered.
    let network: InProcessRelayNetwork | undefined;
    const second = new SynodNode({
      key,
      role: 'relay',
      transports: [net.join('relay-2')],
      store: machines,
      restoreWith: async (requestId) => (network ? network.storedPackets(requestId) : []),
    });
    network = new InProcessRelayNetwork(key, second, h.store, Date.now, ['m']);
    await second.start();
    const recovered = await network.recover();
    expect(recovered).toEqual({ resumed: [], expired: [], restored: [body.requestId] });
    await second.settled();
    // Both commits were the machine's: maxCommits reached, it sealed them.
    expect(second.status(body.requestId)?.phase).toBe('sealed');
    await second.close();
    h.client.close();
  });

  test('a coordinator restarted just after its seal deadline (within the grace its nodes wait) seals the commits its history kept', async () => {
    const h = await openHistory(`file:${join(dir, 'relay-late.db')}`);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(160));
    const members = await Promise.all([161, 162].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(i))));
    const machines = new MemoryMachineStore();
    const net = new MemoryNetwork();
    const body = testRequest({
      embedder,
      nonce: 0x51,
      // Sealed at the deadline with what came (quorum 2; up to 3): the early close cannot do it.
      frame: { quorum: 2, maxCommits: 3, maxTimeMs: 1_000, revealWindowMs: 10_000 },
    });
    const first = new SynodNode({ key, role: 'relay', transports: [net.join('relay-1')], store: machines });
    await first.start();
    const { id, packet } = await first.submit(body);
    await storeRequest(h.store, { id, packet }, Date.now());
    await first.settled();
    await first.close();
    for (const [i, k] of members.entries()) {
      const commit = await signPacket(k, 'commit', {
        requestId: body.requestId,
        commitment: String(i + 1).repeat(64),
        createdAt: Date.now(),
      });
      await h.store.recordCommit({ id: packetId(commit), packet: commit });
    }
    // Down past the seal deadline (1 s), back within the 5 s its nodes still wait for a seal.
    await Bun.sleep(1_300);
    let network: InProcessRelayNetwork | undefined;
    const second = new SynodNode({
      key,
      role: 'relay',
      transports: [net.join('relay-2')],
      store: machines,
      restoreWith: async (requestId) => (network ? network.storedPackets(requestId) : []),
    });
    network = new InProcessRelayNetwork(key, second, h.store, Date.now, ['m']);
    await second.start();
    await network.recover();
    await second.settled();
    // Its overdue deadline fired on the commits the history kept: sealed, not expired QUORUM_NOT_MET.
    expect(second.status(body.requestId)?.phase).toBe('sealed');
    await second.close();
    h.client.close();
  });
});
