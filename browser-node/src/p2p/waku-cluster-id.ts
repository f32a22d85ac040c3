/**
 * The Waku cluster id (RFC 51: a uint16; RFC 64: The Waku Network is cluster 1) and its checks, with
 * no libp2p import: the relay's CLI validates `--waku-cluster` with it before it loads any transport.
 */

/** The Waku Network's cluster (RFC 64). */
export const THE_WAKU_NETWORK_CLUSTER_ID = 1;

/** Synod's own Waku cluster by default; The Waku Network is cluster 1 (and requires RLN). */
export const DEFAULT_CLUSTER_ID = 42;
/** Largest Waku cluster id: RFC 51 makes it a uint16. */
export const MAX_CLUSTER_ID = 65_535;

/**
 * A Waku cluster id that is not one: RFC 51 makes it a uint16, a whole number from 0 to 65535. `source`
 * names where it came from (`clusterId`, a flag, an environment variable).
 */
export class WakuClusterIdError extends RangeError {
  override readonly name = 'WakuClusterIdError';
  readonly code = 'WAKU_CLUSTER_INVALID';
  readonly details: { source: string; value: string };
  readonly hint =
    `Synod's own cluster is ${DEFAULT_CLUSTER_ID}, The Waku Network's ${THE_WAKU_NETWORK_CLUSTER_ID}; every node of a network must use the same`;

  constructor(source: string, value: string) {
    const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
    super(
      `${source} must be a Waku cluster id, a whole number from 0 to ${MAX_CLUSTER_ID} (RFC 51: a uint16), got ${JSON.stringify(shown)}`,
    );
    this.details = { source, value };
  }
}

/** A cluster id as typed (a flag, an environment variable): decimal digits only, 0 to 65535. */
export function parseWakuClusterId(source: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > MAX_CLUSTER_ID) throw new WakuClusterIdError(source, text);
  return Number(text);
}

/** Throws `WakuClusterIdError` unless `clusterId` is a uint16. */
export function checkClusterId(clusterId: number): number {
  if (!(Number.isInteger(clusterId) && clusterId >= 0 && clusterId <= MAX_CLUSTER_ID)) {
    throw new WakuClusterIdError('clusterId', String(clusterId));
  }
  return clusterId;
}
