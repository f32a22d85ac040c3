export * from './rejected-before-bits.ts';
export * from './verdict.ts';
