/**
 * @synod/shared: the Synod protocol core. Pure: no sockets, clocks, timers, storage or randomness of its
 * own; callers pass `now` and random bytes in. Runs unchanged in Bun, browsers and workerd.
 */
export * from './commitment/index.ts';
export * from './consensus/index.ts';
export * from './embedding/index.ts';
export * from './encoding/index.ts';
export * from './errors.ts';
export * from './frame/index.ts';
export * from './identity/index.ts';
export * from './keyed-listeners.ts';
export * from './lifecycle/index.ts';
export * from './packets/index.ts';
export * from './seeded-random.ts';
export * from './transcript/index.ts';
