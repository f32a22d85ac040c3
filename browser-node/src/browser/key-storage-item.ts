/**
 * The `localStorage` item that holds a browser node's sealed key when its config names none. A module of
 * its own so that the web app's page code can name it without bundling the key store (and @synod/shared's
 * key code) a second time.
 */
export const KEY_STORAGE_ITEM = 'synod.node-key.v1';
