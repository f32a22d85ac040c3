/**
 * What Node built-ins become in the browser bundle (see build.ts). `@energetic-ai/core` is bundled for
 * Node and `require`s fs, path, os, worker_threads and friends at module load, only to use them on its
 * Node code path; in a browser those calls never happen, so an empty module is enough.
 */
const empty: Record<string, unknown> = {};
export default empty;
