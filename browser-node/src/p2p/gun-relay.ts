/**
 * A Gun relay peer for headless hosts (Bun or Node): an HTTP server on 127.0.0.1 (by default) whose
 * `/gun` WebSocket endpoint Gun clients (GunTransport) connect to. It writes nothing to disk (no
 * radisk, no file store, no stats file) and relays every put to the other connected peers. In memory
 * it holds only its topics' nodes, bounded like a client's (gun-bounds.ts: packets pruned once past the
 * skew window, at most `maxKeys` / `maxBytes` per topic, pruned and stale packets refused at the wire),
 * and it refuses puts to any other soul. The message ids it keeps for Gun's 9 s dedup are bounded too
 * (gun-dedup-bounds.ts: at most `MAX_GUN_DEDUP_IDS` ids and `MAX_GUN_DEDUP_ID_CHARS` characters of them,
 * the oldest forgotten first).
 *
 * Bun note: Bun replaces the `ws` package with its own implementation, which hands text frames to
 * 'message' listeners as Buffers (as ws 8 does). Gun 0.2020.x expects strings (ws 7) and silently
 * ignores anything else, so every message would be dropped. The relay wraps each accepted socket so
 * text frames reach Gun as strings, under Bun and Node alike.
 */
import { createServer, type Server } from 'node:http';
import { GUN_DEFAULT_TOPICS, GUN_SAFE_OPTIONS, type GunConstructor, type GunRoot, soulOf } from './gun.ts';
import { type GunBoundsOptions, GunGraphBounds, type GunGraphStats } from './gun-bounds.ts';
import { GunDedupBounds, type GunDedupBoundsOptions, type GunDedupStats } from './gun-dedup-bounds.ts';
import Gun from './gun-module.ts';
import type { ContentTopic } from './topics.ts';

export interface GunRelayOptions {
  host?: string;
  /** 0 picks a free port. Default 0. */
  port?: number;
  /**
   * Topics the relay stores and relays; puts to any other soul are refused. Default the Gun
   * transport's default topics (requests and verdicts): keep it a superset of the clients' topics.
   */
  topics?: readonly ContentTopic[];
  /** Bounds on what the relay keeps in memory per topic (age, keys, bytes); see gun-bounds.ts. */
  bounds?: GunBoundsOptions;
  /** Bound on the message ids Gun keeps for its 9 s dedup; see gun-dedup-bounds.ts. */
  dedupBounds?: GunDedupBoundsOptions;
}

export interface GunRelay {
  /** What clients put in `peers`, e.g. `http://127.0.0.1:8765/gun`. */
  readonly url: string;
  readonly port: number;
  readonly gun: GunRoot;
  /** Connected client sockets. */
  clients(): number;
  /** What the relay holds for its topics, and how much was pruned or refused. */
  graphStats(): GunGraphStats;
  /** The message ids the relay holds for Gun's dedup, and how many were forgotten early. */
  dedupStats(): GunDedupStats;
  close(): Promise<void>;
}

interface WsSocket {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  terminate?: () => void;
  close?: () => void;
}

interface WsServer {
  clients: Set<WsSocket>;
  listeners(event: string): Array<(...args: unknown[]) => void>;
  removeAllListeners(event: string): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  close(callback?: () => void): void;
}

const text = new TextDecoder();

export async function startGunRelay(options: GunRelayOptions = {}): Promise<GunRelay> {
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the Gun relay has no TCP address');
  const gun = (Gun as unknown as GunConstructor)({ ...GUN_SAFE_OPTIONS, web: server });
  const bounds = new GunGraphBounds(gun, (options.topics ?? GUN_DEFAULT_TOPICS).map(soulOf), options.bounds);
  const dedup = new GunDedupBounds(gun, options.dedupBounds);
  const wss = (gun._.opt as unknown as { ws: { web: WsServer } }).ws.web;
  const gunOnConnection = wss.listeners('connection')[0];
  if (gunOnConnection === undefined) throw new Error('Gun did not attach to the WebSocket server');
  wss.removeAllListeners('connection');
  wss.on('connection', (socket, request) => {
    gunOnConnection.call(wss, textFrames(socket as WsSocket), request);
  });
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closed = false;
  return {
    url: `http://${urlHost}:${address.port}/gun`,
    port: address.port,
    gun,
    clients: () => wss.clients.size,
    graphStats: () => bounds.stats(),
    dedupStats: () => dedup.stats(),
    async close() {
      if (closed) return;
      closed = true;
      bounds.close();
      for (const socket of wss.clients) {
        if (socket.terminate) socket.terminate();
        else socket.close?.();
      }
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Make a socket's 'message' listeners receive text frames as strings. */
function textFrames(socket: WsSocket): WsSocket {
  const on = socket.on.bind(socket);
  socket.on = (event, listener) =>
    event === 'message'
      ? on('message', (data: unknown, ...rest: unknown[]) =>
          listener(typeof data === 'string' ? data : text.decode(data as Uint8Array), ...rest),
        )
      : on(event, listener);
  return socket;
}
