/**
 * @synod/browser-node: the Synod node. This face is browser-safe (no Node-only imports): the node driver
 * and the P2P transports. Headless pieces: `@synod/browser-node/headless` (TCP/WebSocket listeners, Gun
 * relay) and `@synod/browser-node/cli` (the `synod node` command).
 */
export * from './node/index.ts';
export * from './p2p/index.ts';
