import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
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

/** A chain known only by its id and RPC URL (a local anvil, or any EVM chain). */
export function rpcChain(chainId: number, rpcUrl: string): Chain {
  return defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
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
