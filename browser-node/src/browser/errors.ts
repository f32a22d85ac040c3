import { CodedError } from '@synod/shared';

/**
 * Errors of the browser node's own (the tab, not the protocol): each with a stable code, shown by the
 * app as `CODE: message`.
 *
 *   NODE_KEY_IN_USE       another tab of this browser runs this node key (two tabs serving one key
 *                         would sign two different commitments for one request: equivocation)
 *   TAB_LOCK_UNAVAILABLE  the page has no Web Locks (`navigator.locks`: an insecure context, http on an
 *                         address other than localhost), so it cannot make sure no other tab runs the key
 *   TIMER_WORKER_UNAVAILABLE  the page cannot make the timer worker (no `Worker`, no Blob URLs, or the
 *                         constructor refused): the node's timers run on the page, which a browser
 *                         throttles while the tab is hidden
 *   TIMER_WORKER_FAILED   the timer worker failed once made (its script refused, as by a
 *                         Content-Security-Policy without `worker-src blob:`, which Chromium reports as an
 *                         error event, or an error in it): its timers moved to the page
 */
export type BrowserNodeErrorCode =
  | 'NODE_KEY_IN_USE'
  | 'TAB_LOCK_UNAVAILABLE'
  | 'TIMER_WORKER_UNAVAILABLE'
  | 'TIMER_WORKER_FAILED';

export class BrowserNodeError extends CodedError<BrowserNodeErrorCode> {
  override readonly name = 'BrowserNodeError';
}
