import { describe, expect, test } from 'bun:test';
import { parseChainBridge } from './bridge-config.ts';

const FLAGS = {
  rpcUrl: '--chain-rpc',
  chainId: '--chain-id',
  oracle: '--oracle',
  bridgeKey: '$SYNOD_BRIDGE_KEY',
  confirmations: '--confirmations',
  fromBlock: '--from-block',
  replaceAfterS: '--replace-after-s',
  minBridgeBalance: '--min-bridge-balance',
  maxSettlementGas: '--max-settlement-gas',
  dailyQuota: '--chain-daily-quota',
};
const GOOD = {
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: '31337',
  oracle: `0x${'ab'.repeat(20)}`,
  bridgeKey: `0x${'cd'.repeat(32)}`,
};

describe('parseChainBridge', () => {
  test('nothing given: no bridge; all given: the options, with defaults', () => {
    expect(parseChainBridge({}, FLAGS)).toBeUndefined();
    expect(parseChainBridge(GOOD, FLAGS)).toEqual({
      rpcUrl: 'http://127.0.0.1:8545',
      chainId: 31337,
      oracle: `0x${'ab'.repeat(20)}`,
      bridgeKey: `0x${'cd'.repeat(32)}`,
      confirmations: 2,
      fromBlock: 0n,
      replaceAfterMs: 60_000,
    });
    expect(
      parseChainBridge({ ...GOOD, confirmations: '0', fromBlock: '123', replaceAfterS: '5' }, FLAGS),
    ).toMatchObject({ confirmations: 0, fromBlock: 123n, replaceAfterMs: 5_000 });
    // The minimum bridge balance is given in ether and held in wei.
    expect(parseChainBridge({ ...GOOD, minBridgeBalance: '0.05' }, FLAGS)).toMatchObject({
      minBridgeBalance: 50_000_000_000_000_000n,
    });
    expect(parseChainBridge({ ...GOOD, minBridgeBalance: '3' }, FLAGS)).toMatchObject({
      minBridgeBalance: 3_000_000_000_000_000_000n,
    });
    expect(parseChainBridge({ ...GOOD, maxSettlementGas: '30000000' }, FLAGS)).toMatchObject({
      maxSettlementGas: 30_000_000n,
    });
    expect(parseChainBridge({ ...GOOD, dailyQuota: '5000' }, FLAGS)).toMatchObject({ dailyQuota: 5000 });
  });

  test('each bad setting is named the way the caller names it', () => {
    const error = (over: Record<string, string | undefined>) =>
      (parseChainBridge({ ...GOOD, ...over }, FLAGS) as { error: string }).error;
    expect(error({ oracle: undefined })).toBe('--chain-rpc, --chain-id and --oracle go together');
    expect(error({ rpcUrl: 'ws://x' })).toContain('--chain-rpc');
    expect(error({ chainId: '0' })).toContain('--chain-id');
    expect(error({ chainId: '1.5' })).toContain('--chain-id');
    expect(error({ oracle: '0x12' })).toContain('--oracle');
    expect(error({ bridgeKey: undefined })).toContain('$SYNOD_BRIDGE_KEY');
    expect(error({ bridgeKey: '0x12' })).toContain('$SYNOD_BRIDGE_KEY');
    expect(error({ confirmations: '-1' })).toContain('--confirmations');
    expect(error({ confirmations: '1001' })).toContain('--confirmations');
    expect(error({ fromBlock: 'latest' })).toContain('--from-block');
    expect(error({ replaceAfterS: '0' })).toContain('--replace-after-s');
    expect(error({ replaceAfterS: '2.5' })).toContain('--replace-after-s');
    for (const bad of ['-1', '1e18', '0.1234567890123456789', 'lots', '']) {
      expect(error({ minBridgeBalance: bad })).toContain('--min-bridge-balance');
    }
    for (const bad of ['99999', '1.5', '2e7', '-1', '', '10000000000']) {
      expect(error({ maxSettlementGas: bad })).toContain('--max-settlement-gas');
    }
    for (const bad of ['0', '-1', '1.5', '1e6', '', '10000000000', 'many']) {
      expect(error({ dailyQuota: bad })).toContain('--chain-daily-quota');
    }
    const env = { ...FLAGS, chainId: 'SYNOD_CHAIN_ID' };
    expect((parseChainBridge({ ...GOOD, chainId: 'x' }, env) as { error: string }).error).toBe(
      'SYNOD_CHAIN_ID must be a positive integer',
    );
  });
});
