import { expect, test } from 'bun:test';
import { watchPeers } from './peer-watch.ts';

/** The lines logged while `peers` answers each of `counts` in turn, one look each. */
async function logged(counts: number[], bootstrap: string[]): Promise<Array<[string, string?]>> {
  const lines: Array<Record<string, unknown>> = [];
  let i = 0;
  const stop = watchPeers({
    peers: () => counts[Math.min(i++, counts.length - 1)] ?? 0,
    bootstrap,
    log: (e) => lines.push(e),
    intervalMs: 5,
  });
  while (i < counts.length) await Bun.sleep(5);
  stop();
  return lines.map((l) =>
    l['code'] === undefined ? [String(l['msg'])] : [String(l['msg']), String(l['code'])],
  );
}

test('an outage is logged once when it starts and once when it ends', async () => {
  expect(await logged([1, 1, 0, 0, 0, 2, 2, 0, 1], ['/ip4/127.0.0.1/tcp/1/p2p/x'])).toEqual([
    ['no peers: this node hears no request', 'NO_PEERS'],
    ['peers reached again'],
    ['no peers: this node hears no request', 'NO_PEERS'],
    ['peers reached again'],
  ]);
});

test('bootstrap peers never reached are warned about at the first look; a node without any is not', async () => {
  expect(await logged([0, 0, 0], ['/ip4/127.0.0.1/tcp/1/p2p/x'])).toEqual([
    ['no peers: this node hears no request', 'NO_PEERS'],
  ]);
  expect(await logged([0, 0, 0], [])).toEqual([]);
  // Dialled by someone, then left: that is an outage too.
  expect((await logged([0, 1, 0], [])).map(([msg]) => msg)).toEqual(['no peers: this node hears no request']);
});
