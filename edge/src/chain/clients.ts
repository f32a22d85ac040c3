import { rpcChain } from '@synod/contracts/chain';
import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

/** The JSON-RPC clients of the chain bridge: reads, and the bridge account's transactions. */
export interface BridgeClients {
  chain: Chain;
  client: PublicClient;
  wallet: WalletClient<Transport, Chain, Account>;
}

/** Clients over `rpcUrl` for `chainId`, signing with the bridge's private key (kept in memory only). */
export function bridgeClients(rpcUrl: string, chainId: number, bridgeKey: Hex): BridgeClients {
  const chain = rpcChain(chainId, rpcUrl);
  const transport = http(rpcUrl, { retryCount: 2, timeout: 15_000 });
  return {
    chain,
    // No cached block number: the watcher's confirmation depth is counted from the real head.
    client: createPublicClient({ chain, transport, cacheTime: 0, pollingInterval: 250 }) as PublicClient,
    wallet: createWalletClient({
      chain,
      transport,
      account: privateKeyToAccount(bridgeKey),
      cacheTime: 0,
      pollingInterval: 250,
    }),
  };
}
