export * from './envelope.ts';
export * from './inference-input.ts';
export * from './limits.ts';
export * from './request-id.ts';
export * from './schemas.ts';
