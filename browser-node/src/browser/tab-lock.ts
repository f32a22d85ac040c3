import { BrowserNodeError } from './errors.ts';

/**
 * One tab at a time per node key. Tabs of one origin share the sealed key (localStorage) and the
 * machine store (IndexedDB); two of them serving would each infer and commit with a salt of their own,
 * and the network would hold two different commitments signed by one node id for one request. A Web
 * Lock named after the key's storage item is held while a tab runs the key; the browser releases it
 * when that tab closes, reloads or crashes, so it cannot be left behind.
 */
export interface TabLock {
  release(): void;
}

/** The Web Lock's name for the key kept under `item`. */
const lockName = (item: string) => `synod-node-key:${item}`;

/**
 * Whether a tab holds the lock for `item` now (any tab, this one included): asked without taking it, so
 * a page can say the key runs elsewhere before its passphrase is typed. False without Web Locks.
 */
export async function tabLockHeld(
  item: string,
  locks: LockManager | undefined = globalThis.navigator?.locks,
): Promise<boolean> {
  if (locks === undefined) return false;
  const { held } = await locks.query();
  return (held ?? []).some((l) => l.name === lockName(item));
}

/** The lock for `item`, or NODE_KEY_IN_USE when another tab holds it (never waits). */
export function acquireTabLock(
  item: string,
  locks: LockManager | undefined = globalThis.navigator?.locks,
): Promise<TabLock> {
  if (locks === undefined) {
    return Promise.reject(
      new BrowserNodeError(
        'TAB_LOCK_UNAVAILABLE',
        'this page cannot make sure no other tab runs the node key (no Web Locks here): open it over https or from localhost',
      ),
    );
  }
  return new Promise<TabLock>((resolve, reject) => {
    let release = () => {};
    const held = new Promise<void>((done) => {
      release = done;
    });
    locks
      .request(lockName(item), { ifAvailable: true }, (lock) => {
        if (lock === null) {
          reject(
            new BrowserNodeError(
              'NODE_KEY_IN_USE',
              'this node key is running in another tab of this browser: use that tab, or close it and unlock here',
            ),
          );
          return;
        }
        resolve({ release });
        return held;
      })
      .catch(reject);
  });
}
