export * from './claim-embeddings.ts';
export * from './coordinator-trust.ts';
export * from './late-answer-budget.ts';
export * from './machine-store.ts';
export * from './machine-store-libsql.ts';
export * from './node-errors.ts';
export * from './scheduler.ts';
export * from './synod-node.ts';
