/**
 * Errors of the browser node's own (the tab, not the protocol): each with a stable code, shown by the
 * app as `CODE: message`.
 *
 *   NODE_KEY_IN_USE       another tab of this browser runs this node key (two tabs serving one key
 *                         would sign two different commitments for one request: equivocation)
 *   TAB_LOCK_UNAVAILABLE  the page has no Web Locks (`navigator.locks`: an insecure context, http on an
 *                         address other than localhost), so it cannot make sure no other tab runs the key
 */
export type BrowserNodeErrorCode = 'NODE_KEY_IN_USE' | 'TAB_LOCK_UNAVAILABLE';

export class BrowserNodeError extends Error {
  override readonly name = 'BrowserNodeError';
  readonly code: BrowserNodeErrorCode;

  constructor(code: BrowserNodeErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}
