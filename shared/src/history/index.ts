/**
 * Quorum history (layer 5): libSQL table definitions (drizzle-orm sqlite-core), row mappers from
 * verified packets, and reputation scoring. Pure: the edge opens the database and runs the migrations
 * in shared/drizzle/.
 */
export * from './reputation.ts';
export * from './rows.ts';
export * from './schema.ts';
