export * from './ed25519.ts';
export * from './keystore.ts';
export * from './node-key.ts';
