import { expect, test } from 'bun:test';
import { BlockNotFoundError, HttpRequestError } from 'viem';
import { blockGone, codeOf } from './chain-errors.ts';

test('a block the RPC does not have (a reorg under way) is CHAIN_BLOCK_NOT_FOUND, not an RPC failure', () => {
  const gone = new BlockNotFoundError({ blockNumber: 467n });
  expect(blockGone(gone)).toBe(true);
  expect(codeOf(gone)).toEqual({ code: 'CHAIN_BLOCK_NOT_FOUND' });
  const down = new HttpRequestError({ url: 'http://127.0.0.1:9', details: 'connection refused' });
  expect(blockGone(down)).toBe(false);
  expect(codeOf(down)).toEqual({ code: 'CHAIN_RPC_FAILED' });
  expect(blockGone(new Error('Block at number "467" could not be found.'))).toBe(false);
});
