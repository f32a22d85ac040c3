/**
 * Headless-only P2P pieces (Bun or Node): they import `node:http` and @libp2p/tcp, so they stay out of
 * the browser face (`./index.ts`).
 */
export { type GunRelay, type GunRelayOptions, startGunRelay } from './gun-relay.ts';
export { libp2pKeyFor } from './peer-key.ts';
export {
  closableWebSockets,
  createHeadlessWakuRelay,
  type HeadlessWakuRelayOptions,
} from './waku-relay-headless.ts';
