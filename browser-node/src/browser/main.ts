/**
 * The browser node's page script (bundled by build.ts as `main.js`). It reads the node's config, builds a
 * `BrowserNode` and exposes it on `window.synod`; the page (apps/web) or a test drives it from there:
 *
 *   await synod.unlock(passphrase)   open or create the sealed node key, join the network (follower)
 *   await synod.setServing(true)     load wllama + USE Lite in the worker and serve (role node)
 *   synod.status()                   everything the UI shows (see BrowserNodeStatus)
 *   synod.checkSealedKey(text)       a sealed key file checked without its passphrase
 *
 * Config: `window.SYNOD_CONFIG` when the page sets it, else `GET ./synod-config.json` from the page's
 * server. The script never fetches anything from another origin unless the config says so.
 */
import { BrowserNode, type BrowserNodeConfig, type BrowserNodeStatus } from './browser-node.ts';
import { type CheckedSealedKey, checkSealedKey } from './key-store.ts';

export interface SynodPageApi {
  node: BrowserNode;
  config: BrowserNodeConfig;
  status(): BrowserNodeStatus;
  unlock(passphrase: string): Promise<void>;
  setServing(on: boolean): Promise<void>;
  /** Lock without a reload (BrowserNode.lock): resolves with the committed requests left unfinished. */
  lock(): Promise<number>;
  generate: BrowserNode['generate'];
  onChange(listener: () => void): () => void;
  stop(): Promise<void>;
  /**
   * Check a sealed key file's text without its passphrase (key-store.ts `checkSealedKey`): its node id
   * and its text as it is to be stored; throws KEYSTORE_MALFORMED with `details.issues`.
   */
  checkSealedKey(text: string): CheckedSealedKey;
}

declare global {
  interface Window {
    SYNOD_CONFIG?: BrowserNodeConfig;
    synod?: SynodPageApi;
    synodReady?: Promise<SynodPageApi>;
  }
}

async function readConfig(): Promise<BrowserNodeConfig> {
  if (window.SYNOD_CONFIG !== undefined) return window.SYNOD_CONFIG;
  const res = await fetch(new URL('./synod-config.json', location.href));
  if (!res.ok) throw new Error(`synod-config.json answered HTTP ${res.status}`);
  return (await res.json()) as BrowserNodeConfig;
}

async function boot(): Promise<SynodPageApi> {
  const config = await readConfig();
  const node = new BrowserNode(config);
  const api: SynodPageApi = {
    node,
    config,
    status: () => node.status(),
    unlock: (passphrase) => node.unlock(passphrase),
    setServing: (on) => node.setServing(on),
    lock: () => node.lock(),
    generate: (prompt, maxTokens) => node.generate(prompt, maxTokens),
    onChange: (listener) => node.onChange(listener),
    stop: () => node.stop(),
    checkSealedKey,
  };
  window.synod = api;
  window.addEventListener('pagehide', () => {
    void node.stop();
  });
  document.dispatchEvent(new CustomEvent('synod:ready'));
  return api;
}

window.synodReady = boot();
window.synodReady.catch((e) => console.error('[synod] the browser node could not start', e));
