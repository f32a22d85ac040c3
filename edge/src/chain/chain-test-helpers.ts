/**
 * For chain bridge tests: a real anvil on 127.0.0.1 with SynodOracle deployed, a bridge account and a
 * requester account (fresh random keys, `fundedAccount`), and viem clients over it.
 */
import {
  deployOracle,
  fundedAccount,
  type RunningAnvil,
  rpcChain,
  startAnvil,
  synodOracleAbi,
} from '@synod/contracts';
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem';
import type { ChainBridgeOptions } from './bridge-config.ts';

export interface TestChain {
  anvil: RunningAnvil;
  chain: Chain;
  client: PublicClient;
  oracle: Address;
  bridgeKey: Hex;
  bridge: WalletClient<Transport, Chain, Account>;
  requester: WalletClient<Transport, Chain, Account>;
  /** `callLLM` from the requester; resolves with the request number and the mined block. */
  callLLM(o: {
    prompt: string;
    models: string[];
    maxTokens?: number;
    temperatureCenti?: number;
    quorum?: number;
    fee?: bigint;
    /** Another oracle than `oracle` (see `deployAnother`). */
    oracle?: Address;
  }): Promise<{ requestNo: bigint; blockNumber: bigint; txHash: Hex }>;
  /** A request as an oracle (by default `oracle`) holds it; `status` 0 none, 1 pending, 2 fulfilled, 3 refunded. */
  request(
    requestNo: bigint,
    oracle?: Address,
  ): Promise<{ requester: Address; fee: bigint; deadline: bigint; status: number; questionHash: Hex }>;
  /** A second SynodOracle with the same bridge and settings. */
  deployAnother(): Promise<Address>;
  /** Mine `n` empty blocks. */
  mine(n: number): Promise<void>;
  rpc(method: string, params: unknown[]): Promise<unknown>;
  stop(): Promise<void>;
}

export async function startTestChain(o: { timeoutSeconds?: bigint } = {}): Promise<TestChain> {
  const anvil = await startAnvil();
  const chain = rpcChain(anvil.chainId, anvil.url);
  const transport = http(anvil.url);
  const client = createPublicClient({ chain, transport }) as PublicClient;
  const rpc = (method: string, params: unknown[]) =>
    client.request({ method, params } as unknown as Parameters<PublicClient['request']>[0]);
  const wallet = async () => {
    const { key, account } = await fundedAccount(anvil.url);
    return { key, wallet: createWalletClient({ chain, transport, account }) };
  };
  const bridge = await wallet();
  const requester = await wallet();
  const deploy = () =>
    deployOracle(requester.wallet, client, {
      bridge: bridge.wallet.account.address,
      minFee: 1_000n,
      ...(o.timeoutSeconds !== undefined ? { timeoutSeconds: o.timeoutSeconds } : {}),
    });
  const oracle = await deploy();
  return {
    anvil,
    chain,
    client,
    oracle,
    bridgeKey: bridge.key,
    bridge: bridge.wallet,
    requester: requester.wallet,
    async callLLM(c) {
      const { request, result } = await client.simulateContract({
        address: c.oracle ?? oracle,
        abi: synodOracleAbi,
        functionName: 'callLLM',
        args: [c.prompt, c.models, c.maxTokens ?? 16, c.temperatureCenti ?? 0, c.quorum ?? 3],
        account: requester.wallet.account,
        value: c.fee ?? 1_000n,
      });
      const txHash = await requester.wallet.writeContract(request);
      const receipt = await client.waitForTransactionReceipt({ hash: txHash });
      return { requestNo: result, blockNumber: receipt.blockNumber, txHash };
    },
    async request(requestNo, at = oracle) {
      const [requester, fee, deadline, status, questionHash] = await client.readContract({
        address: at,
        abi: synodOracleAbi,
        functionName: 'requests',
        args: [requestNo],
      });
      return { requester, fee, deadline, status, questionHash };
    },
    deployAnother: deploy,
    async mine(n) {
      await rpc('anvil_mine', [`0x${n.toString(16)}`]);
    },
    rpc,
    stop: () => anvil.stop(),
  };
}

/**
 * The relay's bridge options for a test chain's oracle (`startTestNetwork({ chain })`), its bridge key
 * and chain id filled in; `o` sets how many confirmations it waits for and how often it polls.
 */
export function bridgeOptions(
  chain: TestChain,
  o: Pick<ChainBridgeOptions, 'confirmations' | 'pollMs'> & Partial<ChainBridgeOptions>,
): ChainBridgeOptions {
  return {
    rpcUrl: chain.anvil.url,
    chainId: chain.anvil.chainId,
    oracle: chain.oracle,
    bridgeKey: chain.bridgeKey,
    ...o,
  };
}
