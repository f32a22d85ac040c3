export * from './merkle.ts';
export * from './transcript.ts';
export * from './verify.ts';
