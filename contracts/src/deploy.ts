import type { Account, Address, Chain, PublicClient, Transport, WalletClient } from 'viem';
import { compileOracle } from './compile.ts';
import { synodOracleAbi } from './oracle-abi.ts';

export interface OracleSettings {
  /** The chain watcher's account: fulfils and refunds. */
  bridge: Address;
  /** Least fee of a `callLLM`, in wei. Default 0. */
  minFee?: bigint;
  /** Seconds until anyone may refund a pending request. Default 3600. */
  timeoutSeconds?: bigint;
  /** Gas for a consumer's `onLLMResult`. Default 200,000. */
  callbackGasLimit?: number;
}

/** Compile and deploy SynodOracle; resolves with its address once the deployment is mined. */
export async function deployOracle(
  wallet: WalletClient<Transport, Chain, Account>,
  client: PublicClient,
  s: OracleSettings,
): Promise<Address> {
  const { bytecode } = compileOracle();
  const hash = await wallet.deployContract({
    abi: synodOracleAbi,
    bytecode,
    args: [s.bridge, s.minFee ?? 0n, s.timeoutSeconds ?? 3600n, s.callbackGasLimit ?? 200_000],
  });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success' || !receipt.contractAddress) {
    throw new Error(`SynodOracle deployment ${hash} failed`);
  }
  return receipt.contractAddress;
}
