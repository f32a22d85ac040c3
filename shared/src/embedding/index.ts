export * from './binary.ts';
export * from './kernel.ts';
