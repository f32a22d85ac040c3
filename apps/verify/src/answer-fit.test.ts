import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { fundedAccount } from '@synod/contracts';
import { synodOracleAbi } from '@synod/contracts/abi';
import { MAX_TRANSACTION_GAS } from '@synod/contracts/settlement-gas';
import { createWalletClient, type Hex, http, toHex } from 'viem';
import { startTestChain, type TestChain } from '../../../edge/src/chain/chain-test-helpers.ts';
import { answerFit } from './answer-fit.ts';

let chain: TestChain;
beforeAll(async () => {
  chain = await startTestChain();
}, 60_000);
afterAll(async () => {
  await chain?.stop();
});

const DIGEST = `0x${'ab'.repeat(32)}` as Hex;

/** A pending request, and a fit check of `answer` for it as if refunded in the next block. */
async function pending() {
  const { requestNo } = await chain.callLLM({ prompt: 'Once', models: ['stories260K'] });
  const [, , , , questionHash] = await chain.client.readContract({
    address: chain.oracle,
    abi: synodOracleAbi,
    functionName: 'requests',
    args: [requestNo],
  });
  const refundBlock = (await chain.client.getBlockNumber({ cacheTime: 0 })) + 1n;
  const fit = (answer: string, at = refundBlock) =>
    answerFit(chain.client, {
      oracle: chain.oracle,
      requestNo,
      questionHash,
      answer,
      verdictDigest: DIGEST,
      transcriptRoot: DIGEST,
      refundBlock: at,
      bridge: chain.bridge.account.address,
    });
  return { requestNo, questionHash, refundBlock, fit };
}

describe('answerFit: could a fulfil have been mined just before its refund', () => {
  test('a short answer fits; on a chain taking 30M a block the limit is EIP-7825 cap', async () => {
    const { fit } = await pending();
    const short = await fit('Once upon a time.');
    expect(short).toMatchObject({ kind: 'fits', limit: MAX_TRANSACTION_GAS });
    if (short.kind === 'fits') expect(short.gas).toBeLessThan(200_000n);
    // About 16 KiB: some 680k gas, within both.
    expect((await fit('Once upon a time. '.repeat(900))).kind).toBe('fits');
  });

  test("an answer the block's gas limit cannot take does not fit; a short one still does", async () => {
    const was = (await chain.client.getBlock({ blockTag: 'latest' })).gasLimit;
    await chain.rpc('evm_setBlockGasLimit', [toHex(400_000n)]);
    try {
      await chain.mine(1);
      const { fit } = await pending();
      expect(await fit('Once upon a time.')).toMatchObject({ kind: 'fits', limit: 400_000n });
      // About 19 KiB: its execution does not fit in 400k gas; about 38 KiB: not even its data.
      for (const n of [1_050, 2_100]) {
        expect(await fit('Once upon a time. '.repeat(n))).toMatchObject({
          kind: 'too-large',
          limit: 400_000n,
        });
      }
    } finally {
      await chain.rpc('evm_setBlockGasLimit', [toHex(was)]);
    }
  });

  test('a request no longer pending at that block cannot be told: unknown, not "fits"', async () => {
    const { requestNo, questionHash, fit } = await pending();
    const hash = await chain.bridge.writeContract({
      address: chain.oracle,
      abi: synodOracleAbi,
      functionName: 'refund',
      args: [requestNo, questionHash, 'NO_CONSENSUS'],
    });
    const { blockNumber } = await chain.client.waitForTransactionReceipt({ hash });
    // Estimated on the state after the refund: the oracle refuses any fulfil (NotPending).
    expect((await fit('Once upon a time.', blockNumber + 1n)).kind).toBe('unknown');
    // A block the chain does not have yet.
    expect((await fit('Once upon a time.', blockNumber + 1_000n)).kind).toBe('unknown');
  });

  // The audit already holds the oracle's BridgeChanged history: the bridge is passed in, not read again.
  test('the fulfil is estimated from the bridge it is given, with no read of the oracle', async () => {
    const { requestNo, questionHash, refundBlock } = await pending();
    const reads: unknown[] = [];
    const client = {
      getBlock: chain.client.getBlock,
      estimateContractGas: chain.client.estimateContractGas,
      readContract: (...args: unknown[]) => {
        reads.push(args);
        return Promise.reject(new Error('answerFit must not read the chain for the bridge'));
      },
    } as unknown as Parameters<typeof answerFit>[0];
    const ask = (bridge: Hex | undefined) =>
      answerFit(client, {
        oracle: chain.oracle,
        requestNo,
        questionHash,
        answer: 'Once upon a time.',
        verdictDigest: DIGEST,
        transcriptRoot: DIGEST,
        refundBlock,
        bridge,
      });
    expect((await ask(chain.bridge.account.address)).kind).toBe('fits');
    // From another account the oracle refuses it (NotBridge): the account given is the one used.
    expect((await ask(chain.requester.account.address)).kind).toBe('unknown');
    // An oracle with no bridge then cannot be told.
    expect(await ask(undefined)).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/no bridge/) });
    expect(reads).toEqual([]);
  });
});

// The fulfil is estimated on the state just before the refund's block. An operator who owns the oracle
// and runs its bridge could change the bridge in the same block, just before an ANSWER_TOO_LARGE refund:
// estimated from the refund's sender, every fulfil would revert NotBridge there, and a short answer that
// plainly fit would be "unknown" (the refund "not re-derivable") instead of "fits" (the refund fails). It
// is estimated from whoever was the bridge at that block.

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
    // The bridge at the end of the block before the refund's (chain-audit.ts: bridgeAt(changes, block, 0)).
    bridge: chain.bridge.account.address,
  });
  expect(fit.kind).toBe('fits');
}, 60_000);
