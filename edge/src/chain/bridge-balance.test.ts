import { describe, expect, test } from 'bun:test';
import {
  type BridgeBalance,
  BridgeBalanceMonitor,
  DEFAULT_RESERVE_SETTLEMENTS,
  SETTLEMENT_GAS_BUDGET,
} from './bridge-balance.ts';

const ADDRESS = `0x${'ab'.repeat(20)}` as const;

/** Test double of the two JSON-RPC reads the monitor makes (the real client is tested on anvil). */
function rpcDouble() {
  const state = { balance: 0n, gasPrice: 1_000_000_000n, reads: 0 };
  return {
    state,
    client: {
      getBalance: async ({ address }: { address: `0x${string}` }) => {
        expect(address).toBe(ADDRESS);
        state.reads++;
        return state.balance;
      },
      getGasPrice: async () => state.gasPrice,
    },
  };
}

describe('BridgeBalanceMonitor', () => {
  test('low below the configured minimum; warned once when it falls, told once when it is back', async () => {
    const { state, client } = rpcDouble();
    const logs: Record<string, unknown>[] = [];
    const seen: BridgeBalance[] = [];
    let clock = 5;
    const m = new BridgeBalanceMonitor({
      client: client as never,
      address: ADDRESS,
      minimum: 100n,
      now: () => clock,
      log: (e) => logs.push(e),
      onBalance: (b) => seen.push(b),
    });
    expect(m.last).toBeNull();
    state.balance = 150n;
    expect(await m.check()).toEqual({ address: ADDRESS, wei: 150n, minimumWei: 100n, low: false, at: 5 });
    expect(logs).toEqual([]);
    state.balance = 99n;
    clock = 6;
    expect((await m.check()).low).toBe(true);
    expect((await m.check()).low).toBe(true);
    expect(logs.map((l) => l['level'])).toEqual(['warn']);
    expect(logs[0]).toMatchObject({ bridge: ADDRESS, balanceWei: '99', minimumWei: '100' });
    state.balance = 100n;
    expect((await m.check()).low).toBe(false);
    expect(logs.map((l) => l['level'])).toEqual(['warn', 'info']);
    expect(seen.map((b) => b.wei)).toEqual([150n, 99n, 99n, 100n]);
    expect(m.last?.wei).toBe(100n);
  });

  test('without a minimum: the default reserve of settlements at the gas price of each read', async () => {
    const { state, client } = rpcDouble();
    const m = new BridgeBalanceMonitor({ client: client as never, address: ADDRESS, now: () => 0 });
    const reserve = DEFAULT_RESERVE_SETTLEMENTS * SETTLEMENT_GAS_BUDGET;
    state.balance = reserve * state.gasPrice;
    expect(await m.check()).toMatchObject({ minimumWei: reserve * state.gasPrice, low: false });
    state.gasPrice *= 2n;
    expect(await m.check()).toMatchObject({ minimumWei: reserve * state.gasPrice, low: true });
  });

  test('a failed read throws and keeps the last balance', async () => {
    const { state, client } = rpcDouble();
    state.balance = 7n;
    const m = new BridgeBalanceMonitor({
      client: {
        ...client,
        getBalance: async (a: { address: `0x${string}` }) => {
          if (state.reads > 0) throw new Error('rpc down');
          return client.getBalance(a);
        },
      } as never,
      address: ADDRESS,
      minimum: 1n,
      now: () => 0,
    });
    await m.check();
    await expect(m.check()).rejects.toThrow('rpc down');
    expect(m.last?.wei).toBe(7n);
  });
});
