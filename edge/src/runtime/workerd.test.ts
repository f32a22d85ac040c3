import { describe, expect, test } from 'bun:test';
import { initialChainWatcherStats } from '../chain/chain-watcher.ts';
import { type ChainPassResult, chainPassLevel } from './workerd.ts';

const STATS = { ...initialChainWatcherStats(), passes: 1, bridge: null } as Extract<
  ChainPassResult,
  { ran: true }
>['stats'];

describe('the cron pass log line', () => {
  test('is an error when the configured chain bridge could not run or failed, info otherwise', () => {
    const rpc = { SYNOD_CHAIN_RPC: 'https://rpc.example' };
    expect(chainPassLevel({ ran: false, reason: 'SYNOD_CHAIN_RPC is not set' }, {})).toBe('info');
    expect(chainPassLevel({ ran: false, reason: 'SYNOD_CHAIN_ID is not set' }, rpc)).toBe('error');
    expect(chainPassLevel({ ran: true, stats: STATS }, rpc)).toBe('info');
    expect(
      chainPassLevel(
        { ran: true, stats: STATS, error: { code: 'INTERNAL', message: 'HTTP request failed' } },
        rpc,
      ),
    ).toBe('error');
    // The watcher ran, but its pass failed or a row could not be settled: an error line.
    expect(chainPassLevel({ ran: true, stats: { ...STATS, errors: 1 } }, rpc)).toBe('error');
  });
});
