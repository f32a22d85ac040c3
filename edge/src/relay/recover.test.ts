/**
 * A relay that restarts restores its coordinator machines as they were last saved; packets its history
 * stored after that (the history stores a packet before the machine takes it, and a save can fail) were
 * missing from them: a request whose commits were all in the history expired QUORUM_NOT_MET. `recover`
 * now hands each restored machine the commits and reveals the history holds for it.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryMachineStore, MemoryNetwork, SynodNode } from '@synod/browser-node';
import {
  deriveRequestId,
  NodeKey,
  packetId,
  type RequestBody,
  resolveFrame,
  signPacket,
} from '@synod/shared';
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
    const content = {
      nonce: `${'00'.repeat(15)}50`,
      prompt: 'hi',
      acceptedModels: ['m'],
      params: { temperature: 0, maxTokens: 8 },
      frame: resolveFrame({ embeddingModel: embedder, quorum: 2, maxCommits: 2, maxTimeMs: 60_000 }),
      origin: { kind: 'http' as const },
      createdAt: Date.now(),
    };
    const body = { ...content, requestId: deriveRequestId(content) } as RequestBody;
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
    // The restart: the machine is restored from its store, then recovered.
    const second = new SynodNode({ key, role: 'relay', transports: [net.join('relay-2')], store: machines });
    await second.start();
    expect(second.status(body.requestId)?.phase).toBe('pending');
    const network = new InProcessRelayNetwork(key, second, h.store, Date.now, ['m']);
    const recovered = await network.recover();
    expect(recovered).toEqual({ resumed: [], expired: [], replayed: [body.requestId] });
    await second.settled();
    // Both commits were the machine's: maxCommits reached, it sealed them.
    expect(second.status(body.requestId)?.phase).toBe('sealed');
    await second.close();
    h.client.close();
  });
});
