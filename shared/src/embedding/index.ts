export * from './binary.ts';
