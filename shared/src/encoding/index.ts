export * from './bytes.ts';
export * from './canonical.ts';
export * from './duplicate-member.ts';
export * from './hash.ts';
export * from './unshown.ts';
