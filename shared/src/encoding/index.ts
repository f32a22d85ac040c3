export * from './bytes.ts';
export * from './canonical.ts';
export * from './hash.ts';
