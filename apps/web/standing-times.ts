/**
 * When the contributor app asks the relay for the node's standing (`GET /v1/nodes?node=`). The server
 * passes these in the page's config (`synod-config.json`, field `standing`); tests shorten them.
 */
export interface StandingTimes {
  /** Asked at least this often. */
  everyMs: number;
  /** Asked on the node's own changes (a heartbeat, a verdict), at most this often. */
  onChangeMs: number;
  /** An ask the relay has not answered in this long failed: the figures are blanked. */
  timeoutMs: number;
}

export const STANDING_TIMES: StandingTimes = { everyMs: 15_000, onChangeMs: 5_000, timeoutMs: 5_000 };
