export * from './node/index.ts';
export { MemoryNetwork, MemoryTransport } from './p2p/memory.ts';
export type { Transport } from './p2p/transport.ts';
