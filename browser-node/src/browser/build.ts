/**
 * Bundle the browser node for a page: the page script and its inference worker, with `Bun.build`
 * (target `browser`). Node built-ins that `@energetic-ai/core` (a Node bundle of tfjs) and the Node
 * branches of use-lite.ts name are aliased to an empty module: those branches never run in a browser.
 *
 * Headless-only code (node-llama-cpp, @libp2p/tcp) is never imported by the browser entries, so it
 * never reaches the bundle. Our own Node-only modules that a shared module imports on its Node branch
 * (transformers.ts loads the models directory for a local `path`) are aliased to the empty module too.
 */
import { fileURLToPath } from 'node:url';
import type { BunPlugin } from 'bun';

/** Node built-ins referenced by @energetic-ai/core and by use-lite.ts's Node-only branch. */
export const NODE_BUILTINS_TO_SHIM = [
  'crypto',
  'fs',
  'fs/promises',
  'module',
  'node-fetch',
  'os',
  'path',
  'perf_hooks',
  'url',
  'util',
  'worker_threads',
] as const;

/** Our Node-only modules (fs, streams), as the shared modules import them. */
export const NODE_ONLY_MODULES = ['./models-dir.ts'] as const;

const EMPTY_SHIM = fileURLToPath(new URL('./empty-shim.ts', import.meta.url));

/** Resolve `fs`, `node:fs`, … (and our Node-only modules) to the empty shim. */
export function nodeBuiltinShims(
  names: readonly string[] = NODE_BUILTINS_TO_SHIM,
  modules: readonly string[] = NODE_ONLY_MODULES,
): BunPlugin {
  const literal = (n: string) => n.replace(/[.]/g, '\\.').replace(/[/]/g, '\\/');
  const builtins = new RegExp(`^(node:)?(${names.map(literal).join('|')})$`);
  const own = new RegExp(`^(${modules.map(literal).join('|')})$`);
  return {
    name: 'synod-node-builtin-shims',
    setup(build) {
      build.onResolve({ filter: builtins }, () => ({ path: EMPTY_SHIM }));
      if (modules.length > 0) build.onResolve({ filter: own }, () => ({ path: EMPTY_SHIM }));
    },
  };
}

export const BROWSER_ENTRIES = {
  /** The page script: node key, transports, queue, SynodNode; exposes `window.synod`. */
  node: fileURLToPath(new URL('./main.ts', import.meta.url)),
  /** The inference worker: wllama and USE Lite off the page's thread. */
  worker: fileURLToPath(new URL('./inference-worker.ts', import.meta.url)),
} as const;

export interface BrowserBundle {
  /** File name in `outdir` → absolute path. */
  files: Map<string, string>;
}

/**
 * Build `entries` (default: the page script `main.js` and the worker `inference-worker.js`) into
 * `outdir`. Throws with Bun's messages when the build fails.
 */
export async function buildBrowserBundle(
  outdir: string,
  options: { entries?: string[]; minify?: boolean; sourcemap?: boolean } = {},
): Promise<BrowserBundle> {
  const entries = options.entries ?? [BROWSER_ENTRIES.node, BROWSER_ENTRIES.worker];
  const result = await Bun.build({
    entrypoints: entries,
    outdir,
    target: 'browser',
    format: 'esm',
    minify: options.minify ?? false,
    sourcemap: options.sourcemap === false ? 'none' : 'linked',
    naming: '[name].[ext]',
    plugins: [nodeBuiltinShims()],
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  if (!result.success) {
    const messages = result.logs.map((l) => String(l)).join('\n');
    throw new Error(`the browser bundle failed to build:\n${messages}`);
  }
  const files = new Map<string, string>();
  for (const o of result.outputs) files.set(o.path.slice(o.path.lastIndexOf('/') + 1), o.path);
  return { files };
}
