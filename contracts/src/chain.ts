import { type Chain, defineChain } from 'viem';

/** A chain known only by its id and JSON-RPC URL (a local anvil, or any EVM chain), for viem clients. */
export function rpcChain(chainId: number, rpcUrl: string): Chain {
  return defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}
