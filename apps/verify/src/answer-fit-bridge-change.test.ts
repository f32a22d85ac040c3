import { afterAll, beforeAll, expect, test } from 'bun:test';
import { fundedAccount } from '@synod/contracts';
import { synodOracleAbi } from '@synod/contracts/abi';
import { createWalletClient, type Hex, http } from 'viem';
import { startTestChain, type TestChain } from '../../../edge/src/chain/chain-test-helpers.ts';
import { answerFit } from './answer-fit.ts';

// The fulfil is estimated on the state just before the refund's block. An operator who owns the oracle
// and runs its bridge could change the bridge in the same block, just before an ANSWER_TOO_LARGE refund:
// estimated from the refund's sender, every fulfil would revert NotBridge there, and a short answer that
// plainly fit would be "unknown" (the refund "not re-derivable") instead of "fits" (the refund fails). It
// is estimated from whoever was the bridge at that block.
let chain: TestChain;
beforeAll(async () => {
  chain = await startTestChain();
}, 60_000);
afterAll(async () => {
  await chain?.stop();
});

test('a bridge changed in the refund block itself does not hide a short answer that fit', async () => {
  const oracle = await chain.deployAnother(); // owned by chain.requester
  const { requestNo } = await chain.callLLM({ prompt: 'Once', models: ['stories260K'], oracle });
  const [, , , , questionHash] = await chain.client.readContract({
    address: oracle,
    abi: synodOracleAbi,
    functionName: 'requests',
    args: [requestNo],
  });
  const { account } = await fundedAccount(chain.anvil.url);
  const next = createWalletClient({ account, chain: chain.chain, transport: http(chain.anvil.url) });
  await chain.rpc('evm_setAutomine', [false]);
  let refundHash: Hex;
  try {
    await chain.requester.writeContract({
      address: oracle,
      abi: synodOracleAbi,
      functionName: 'setBridge',
      args: [account.address],
      gas: 100_000n,
    });
    refundHash = await next.writeContract({
      address: oracle,
      abi: synodOracleAbi,
      functionName: 'refund',
      args: [requestNo, questionHash, 'ANSWER_TOO_LARGE'],
      gas: 300_000n,
    });
    await chain.mine(1);
  } finally {
    await chain.rpc('evm_setAutomine', [true]);
  }
  const receipt = await chain.client.waitForTransactionReceipt({ hash: refundHash });
  expect(receipt.status).toBe('success');
  const fit = await answerFit(chain.client, {
    oracle,
    requestNo,
    questionHash,
    answer: 'Once upon a time.',
    verdictDigest: `0x${'ab'.repeat(32)}`,
    transcriptRoot: `0x${'ab'.repeat(32)}`,
    refundBlock: receipt.blockNumber,
  });
  expect(fit.kind).toBe('fits');
}, 60_000);
