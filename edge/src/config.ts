import {
  DEFAULT_CLUSTER_ID,
  parseWakuClusterId,
  WakuClusterIdError,
} from '@synod/browser-node/waku-cluster-id';
import type { EmbeddingModelRef } from '@synod/shared';
import type { RateLimitConfig } from './rate-limit.ts';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS } from './store/idempotency-retention.ts';

export interface EdgeConfig {
  /** Embedders the relay can pin into frames; the first is the default. */
  embedders: readonly EmbeddingModelRef[];
  /** Models assumed served even before a heartbeat names them (e.g. the local network's). */
  configuredModels: readonly string[];
  /** `models` when a request names none. */
  defaultModels: readonly string[];
  /** Requests per day for callers authenticated by a signed request (no API key row). */
  signedQuotaPerDay: number;
  /**
   * Rate limit per caller for writes, and per client address for /v1/verify and for the public reads
   * that page through the database (/v1/history, /v1/nodes, GET /v1/verify/:id), each its own bucket.
   */
  rateLimit: RateLimitConfig;
  /** Body limits in bytes. */
  bodyLimit: number;
  verifyBodyLimit: number;
  /** Upper bound on how long /v1/chat/completions waits for a verdict, on top of the frame's times. */
  chatWaitSlackMs: number;
  /** How long an API key looked up in libSQL is reused (a revocation takes this long to bite). */
  apiKeyCacheMs: number;
  /** A comment line on waiting server-sent-event streams this often, so idle-cutting proxies keep them. */
  sseKeepAliveMs: number;
  /** How long an Idempotency-Key (and a signed request's signature) is remembered. */
  idempotencyRetentionMs: number;
  /**
   * Web origins (`https://app.example`) whose pages may call the API from a browser (CORS), or `['*']`
   * for any. Default none: browsers on other origins are refused, servers and agents are not affected.
   */
  corsOrigins: readonly string[];
}

export const DEFAULT_EDGE_CONFIG: Omit<EdgeConfig, 'embedders' | 'configuredModels' | 'defaultModels'> = {
  signedQuotaPerDay: 1_000,
  rateLimit: { ratePerSecond: 50, burst: 100 },
  bodyLimit: 256 * 1024,
  verifyBodyLimit: 4 * 1024 * 1024,
  chatWaitSlackMs: 5_000,
  apiKeyCacheMs: 5_000,
  sseKeepAliveMs: 15_000,
  idempotencyRetentionMs: DEFAULT_IDEMPOTENCY_RETENTION_MS,
  corsOrigins: [],
};

/**
 * A comma-separated origin list (a CLI flag, a worker variable): `*`, or origins like
 * `https://app.example` (scheme, host, optional port; no path). Throws a TypeError naming a bad entry.
 */
export function parseCorsOrigins(list: string): string[] {
  const origins = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(o)) {
      throw new TypeError(`not a web origin: ${o} (expected https://host[:port], or *)`);
    }
  }
  return origins;
}

/**
 * A command-line flag or environment value that is not valid. Its message names the flag (or the
 * variable) and what it takes; the CLIs print it on one line and exit with code 2.
 */
export class FlagError extends Error {
  override readonly name = 'FlagError';
}

/** `got "…"` for a message: the value as typed, quoted, cut short and with control characters escaped. */
export function got(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return `got ${JSON.stringify(shown)}`;
}

/** A TCP port: 0-65535, decimal digits only (not '', ' 80', '1e3' or '0x50'); 0 asks for any free port. */
export function parsePort(flag: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65_535) {
    throw new FlagError(`${flag} must be a port number (0-65535, digits only), ${got(text)}`);
  }
  return Number(text);
}

/** A whole number in `[min, max]`, decimal digits only. `what` says what it is (`a whole number from 1`). */
export function parseWholeNumber(flag: string, text: string, min: number, max: number, what: string): number {
  if (!/^\d{1,16}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new FlagError(`${flag} must be ${what}, ${got(text)}`);
  }
  return Number(text);
}

/** Synod's own Waku cluster, the relay's default. */
export const DEFAULT_WAKU_CLUSTER = DEFAULT_CLUSTER_ID;

/** A `--waku-cluster` or `$SYNOD_WAKU_CLUSTER` that is not a Waku cluster id. */
export class WakuClusterFlagError extends FlagError {
  readonly code = 'WAKU_CLUSTER_INVALID';
}

/**
 * A Waku cluster id (`--waku-cluster`, `$SYNOD_WAKU_CLUSTER`): 0-65535, decimal digits only. Checked
 * with the transport's own rule (a module without libp2p), so a bad one exits 2 before the node and
 * its transports are loaded.
 */
export function parseWakuCluster(flag: string, text: string): number {
  try {
    return parseWakuClusterId(flag, text);
  } catch (e) {
    if (e instanceof WakuClusterIdError) throw new WakuClusterFlagError(e.message);
    throw e;
  }
}

/**
 * A comma-separated list with at least one entry and no empty one (`a,,b`, a trailing comma, `,`);
 * blanks around entries are dropped. `what` names the entries (`model ids`); `check` refuses an entry
 * by returning what is wrong with it.
 */
export function parseList(
  flag: string,
  text: string,
  what: string,
  check: (entry: string) => string | undefined = () => undefined,
): string[] {
  const entries = text.split(',').map((s) => s.trim());
  if (entries.some((s) => s === '')) {
    throw new FlagError(
      `${flag} must be a comma-separated list of ${what} without empty entries, ${got(text)}`,
    );
  }
  for (const e of entries) {
    const wrong = check(e);
    if (wrong !== undefined) throw new FlagError(`${flag}: ${wrong}, ${got(e)}`);
  }
  return entries;
}

/**
 * The name of an environment variable (`SYNOD_PASSPHRASE`). The value is not repeated in the message:
 * a flag such as `--passphrase-env` given the secret itself by mistake must not print it.
 */
export function parseEnvName(flag: string, text: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(text)) {
    throw new FlagError(
      `${flag} must name an environment variable (letters, digits and _, not starting with a digit)`,
    );
  }
  return text;
}

/** A host name or IP address literal as it may stand in a URL (no scheme, port, user or path). */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])$/;

/** An IPv4 or IPv6 address literal (`127.0.0.1`, `::1`, without brackets). */
export function isIpAddress(text: string): boolean {
  const octet = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
  if (new RegExp(`^${octet}(?:\\.${octet}){3}$`).test(text)) return true;
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(':')) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** The relay's database: a local file, or a libSQL server (sqld, Turso) reached over the network. */
export type DbUrl = { kind: 'file'; url: string; path: string } | { kind: 'server'; url: string };

/** A libSQL URL with its credentials (`//user:pass@`, `authToken=`) blanked, for a message or a log. */
export function redactDbUrl(url: string): string {
  if (url.startsWith('file:')) return url;
  return url.replace(/\/\/[^@/]*@/, '//').replace(/(authToken=)[^&]*/gi, '$1…');
}

/**
 * A `--db` value: `file:PATH` (not in memory: the relay's history must outlive it), `http(s)://HOST[:PORT]`
 * (sqld) or `libsql://HOST` (Turso), with no query parameters libSQL does not know.
 */
export function parseDbUrl(flag: string, text: string): DbUrl {
  const refuse = (why?: string) =>
    new FlagError(
      `${flag} must be file:PATH, http(s)://HOST or libsql://HOST, ${got(redactDbUrl(text))}${why ? ` (${why})` : ''}`,
    );
  const file = /^file:(.*)$/s.exec(text);
  if (file) {
    const path = (file[1] ?? '').replace(/^\/\/(?=\/)/, '');
    if (path === '' || path.includes(':memory:') || /[?#]/.test(path) || /\p{Cc}/u.test(path)) {
      throw refuse();
    }
    return { kind: 'file', url: text, path };
  }
  const server = /^(?:https?|libsql):\/\/([^/?#]+)(\/[^?#]*)?(\?[^#]*)?$/.exec(text);
  if (!server) throw refuse(/^[^:\p{Cc}]+$/u.test(text) ? `a file is file:${text}` : undefined);
  const authority = (server[1] ?? '').replace(/^[^@]*@/, '');
  const hostPort = /^(.*?)(?::(\d{1,5}))?$/.exec(authority);
  const host = hostPort?.[1] ?? '';
  const port = hostPort?.[2];
  if (!HOST_RE.test(host) || (port !== undefined && Number(port) > 65_535)) throw refuse();
  if ((server[2] ?? '/') !== '/') throw refuse('a libSQL server URL has no path');
  for (const [k] of new URLSearchParams(server[3] ?? '')) {
    if (k !== 'tls' && k !== 'authToken') throw refuse(`unknown query parameter ${k}`);
  }
  return { kind: 'server', url: text };
}
