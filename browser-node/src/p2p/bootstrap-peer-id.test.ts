import { describe, expect, test } from 'bun:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { waitFor } from './test-fixtures.ts';
import {
  BOOTSTRAP_DIAL_FAILED_HINT,
  type BootstrapFailureLine,
  type WakuRelayLogLine,
  type WakuRelayOptions,
} from './waku-relay.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';
import { addressOf, closedAfterEach } from './waku-test-transports.ts';

const LONG = 120_000;
const track = closedAfterEach();
const reconnect = { initialMs: 100, maxMs: 200 };

const portOf = (address: string) => Number(address.split('/tcp/')[1]?.split('/')[0]);
/** The same listening address, naming `peerId` instead of the listener's. */
const naming = (address: string, peerId: string) => address.replace(/\/p2p\/[^/]+$/, `/p2p/${peerId}`);

async function libp2pKey(): Promise<NonNullable<WakuRelayOptions['privateKey']>> {
  // @libp2p/crypto 5.1.23 is typed against @libp2p/interface 3, libp2p 2.8 against 2: same key at run time
  return (await generateKeyPair('Ed25519')) as unknown as NonNullable<WakuRelayOptions['privateKey']>;
}

type Line<C extends BootstrapFailureLine['code']> = Extract<BootstrapFailureLine, { code: C }>;
const codeOf = (l: WakuRelayLogLine) => ('code' in l ? l.code : undefined);
const mismatches = (lines: WakuRelayLogLine[]) =>
  lines.filter((l): l is Line<'BOOTSTRAP_PEER_MISMATCH'> => codeOf(l) === 'BOOTSTRAP_PEER_MISMATCH');
const dialFailures = (lines: WakuRelayLogLine[]) =>
  lines.filter((l): l is Line<'BOOTSTRAP_DIAL_FAILED'> => codeOf(l) === 'BOOTSTRAP_DIAL_FAILED');

describe('a dialled multiaddr is held to the peer id it names', () => {
  test(
    "a bootstrap address whose /p2p/ id is not the listener's is refused, not counted as a peer, and logged once",
    async () => {
      const listener = track(await createHeadlessWakuRelay());
      const other = track(await createHeadlessWakuRelay());
      const wrong = naming(addressOf(listener, false), other.peerId);
      const lines: WakuRelayLogLine[] = [];
      const node = track(
        await createHeadlessWakuRelay({ bootstrap: [wrong], reconnect, log: (l) => lines.push(l) }),
      );
      // it keeps dialling the address, with its backoff, and is turned away every time
      await waitFor(() => node.stats().redials >= 3 || node.peers().length > 0, LONG, 'redials');
      expect(node.peers()).toEqual([]);
      expect(listener.peers()).toEqual([]);
      expect(node.stats().peerMismatches).toBeGreaterThanOrEqual(3);
      // a dial by hand of that address fails too, naming neither peer as connected
      await expect(node.node.dial(multiaddr(wrong))).rejects.toThrow();
      expect(node.peers()).toEqual([]);
      // one line for the spell, however many dials were turned away
      expect(mismatches(lines)).toEqual([
        {
          level: 'warn',
          msg: 'a bootstrap address is answered by another peer than the one it names: not connected',
          code: 'BOOTSTRAP_PEER_MISMATCH',
          address: wrong,
          expected: other.peerId,
          actual: listener.peerId,
          hint: 'the --bootstrap multiaddr names another peer id than the one listening there: copy the multiaddr the peer prints at start',
        },
      ]);
      // the right address still works
      await node.node.dial(multiaddr(addressOf(other, false)));
      await waitFor(() => node.peers().includes(other.peerId), LONG, 'the right peer');
      expect(node.peers()).toEqual([other.peerId]);
    },
    LONG,
  );

  test(
    'the address is dialled until the peer it names answers there, and again when that peer restarts',
    async () => {
      const relayKey = await libp2pKey();
      // an impostor holds the relay's port first
      let impostor = track(await createHeadlessWakuRelay());
      const tcpPort = portOf(addressOf(impostor, false));
      // the relay's id, from its key (a start and a stop)
      const first = await createHeadlessWakuRelay({ privateKey: relayKey });
      const relayId = first.peerId;
      await first.close();
      const firstImpostor = impostor.peerId;
      const address = naming(addressOf(impostor, false), relayId);
      const lines: WakuRelayLogLine[] = [];
      const node = track(
        await createHeadlessWakuRelay({ bootstrap: [address], reconnect, log: (l) => lines.push(l) }),
      );
      await waitFor(() => mismatches(lines).length === 1 || node.peers().length > 0, LONG, 'the mismatch');
      expect(node.peers()).toEqual([]);

      // the impostor goes; the relay starts on that port: the node reaches it by itself
      await impostor.close();
      let relay = track(await createHeadlessWakuRelay({ privateKey: relayKey, tcpPort }));
      await waitFor(() => node.peers().includes(relayId), LONG, 'the relay');
      expect(node.peers()).toEqual([relayId]);

      // the relay restarts: the node dials the address again
      await relay.close();
      await waitFor(() => node.peers().length === 0, LONG, 'the disconnect');
      relay = track(await createHeadlessWakuRelay({ privateKey: relayKey, tcpPort }));
      await waitFor(() => node.peers().includes(relayId), LONG, 'the relay after its restart');

      // another peer takes the port over: a new spell, logged once more
      await relay.close();
      impostor = track(await createHeadlessWakuRelay({ tcpPort }));
      await waitFor(() => mismatches(lines).length === 2, LONG, 'the second mismatch');
      const redials = node.stats().redials;
      await waitFor(() => node.stats().redials >= redials + 3, LONG, 'redials meanwhile');
      expect(mismatches(lines).map((l) => l.actual)).toEqual([firstImpostor, impostor.peerId]);
      expect(node.peers()).toEqual([]);
      expect(impostor.peers()).toEqual([]);
    },
    LONG,
  );

  test(
    'a bootstrap address whose failure flaps between kinds is logged once a spell: each change told to the status, logged at most once a minute, the end said with the counts',
    async () => {
      const relayKey = await libp2pKey();
      // the relay's id and a port of its, free again (a start and a stop)
      const first = await createHeadlessWakuRelay({ privateKey: relayKey });
      const relayId = first.peerId;
      const address = addressOf(first, false);
      const tcpPort = portOf(address);
      await first.close();
      const lines: WakuRelayLogLine[] = [];
      const told: BootstrapFailureLine[] = [];
      // The spells' clock, moved by hand past a minute.
      let clock = 1_000_000;
      const node = track(
        await createHeadlessWakuRelay({
          bootstrap: [address],
          reconnect: { ...reconnect, now: () => clock },
          log: (l) => lines.push(l),
          onBootstrapFailure: (l) => told.push(l),
        }),
      );
      await waitFor(() => node.stats().redials >= 3, LONG, 'redials');
      // one line for the spell, however many dials failed
      expect(lines).toEqual([
        {
          level: 'warn',
          msg: 'a bootstrap address could not be dialled: not connected',
          code: 'BOOTSTRAP_DIAL_FAILED',
          address,
          expected: relayId,
          error: expect.any(String),
          hint: BOOTSTRAP_DIAL_FAILED_HINT,
        },
      ]);
      expect(dialFailures(lines)[0]?.error).not.toBe('');
      expect(told.map(codeOf)).toEqual(['BOOTSTRAP_DIAL_FAILED']);

      // Another peer listens there, goes, comes back, goes: each change told to the status as it comes,
      // none logged (all within a minute of the spell's first line).
      const flap = async (n: number) => {
        const impostor = track(await createHeadlessWakuRelay({ tcpPort }));
        await waitFor(() => told.length === n, LONG, `change ${n}: answered by another peer`);
        await impostor.close();
        await waitFor(() => told.length === n + 1, LONG, `change ${n + 1}: refused again`);
        return impostor.peerId;
      };
      await flap(2);
      expect(lines).toHaveLength(1);
      // A minute on, the next change is logged, with the spell so far.
      clock += 60_000;
      const impostor = await flap(4);
      expect(told.map(codeOf)).toEqual([
        'BOOTSTRAP_DIAL_FAILED',
        'BOOTSTRAP_PEER_MISMATCH',
        'BOOTSTRAP_DIAL_FAILED',
        'BOOTSTRAP_PEER_MISMATCH',
        'BOOTSTRAP_DIAL_FAILED',
      ]);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatchObject({
        code: 'BOOTSTRAP_PEER_MISMATCH',
        address,
        expected: relayId,
        actual: impostor,
        sinceMs: 60_000,
        kindChanges: 3,
      });
      const attemptsThen = (lines[1] as { attempts: number }).attempts;
      expect(attemptsThen).toBeGreaterThanOrEqual(4);

      // The relay is back: reached by itself, and the spell's end said once, with its counts.
      track(await createHeadlessWakuRelay({ privateKey: relayKey, tcpPort }));
      await waitFor(() => node.peers().includes(relayId), LONG, 'the relay');
      await waitFor(() => lines.length === 3, LONG, 'the end of the spell');
      const end = lines[2] as Extract<WakuRelayLogLine, { level: 'info' }>;
      expect(end).toMatchObject({
        level: 'info',
        msg: 'a bootstrap address is reached: its spell of failures ends',
        address,
        expected: relayId,
        lastedMs: 60_000,
        kindChanges: 4,
      });
      expect(end.mismatches).toBeGreaterThanOrEqual(2);
      expect(end.dialFailures).toBeGreaterThanOrEqual(3);
      expect(end.attempts).toBe(end.mismatches + end.dialFailures);
      expect(end.attempts).toBeGreaterThan(attemptsThen);
    },
    LONG,
  );
});
