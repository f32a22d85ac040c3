/**
 * Waku relay for headless nodes (Bun or Node): TCP and a WebSocket listener, so browsers (which can
 * only dial WebSocket) and other headless nodes (TCP) can reach it. Kept apart from waku-relay.ts
 * because @libp2p/tcp is Node-only and must stay out of a browser bundle.
 */
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { createWakuRelayTransport, type WakuRelayOptions, type WakuRelayTransport } from './waku-relay.ts';

export interface HeadlessWakuRelayOptions extends Omit<WakuRelayOptions, 'transports' | 'listen'> {
  /** Host to listen on. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  tcpPort?: number;
  /** WebSocket port (plain `ws`); 0 picks a free one. Default 0. */
  wsPort?: number;
}

export function createHeadlessWakuRelay(options: HeadlessWakuRelayOptions = {}): Promise<WakuRelayTransport> {
  const { host = '127.0.0.1', tcpPort = 0, wsPort = 0, ...rest } = options;
  const family = host.includes(':') ? 'ip6' : 'ip4';
  return createWakuRelayTransport({
    peerExchange: true,
    ...rest,
    listen: [`/${family}/${host}/tcp/${tcpPort}`, `/${family}/${host}/tcp/${wsPort}/ws`],
    transports: [tcp(), closableWebSockets()],
  });
}

/**
 * @libp2p/websockets with a listener that closes under Bun. Its listener hands sockets to a
 * `node:http` server that never listens itself, then waits for that server's 'close' event; Node emits
 * 'close' for a server that is not listening, Bun's `node:http` does not, so `libp2p.stop()` would
 * hang forever. After asking the listener to close, emit the event ourselves when the server is not
 * listening (a second 'close' under Node is harmless: the wait has already been released).
 */
export function closableWebSockets(init?: Parameters<typeof webSockets>[0]): ReturnType<typeof webSockets> {
  const factory = webSockets(init);
  return (components) => {
    const transport = factory(components);
    const createListener = transport.createListener.bind(transport);
    transport.createListener = (options) => {
      const listener = createListener(options);
      const close = listener.close.bind(listener);
      listener.close = async () => {
        const closing = close();
        const server = (
          listener as unknown as { http?: { listening?: boolean; emit(event: string): boolean } }
        ).http;
        if (server !== undefined && server.listening !== true) server.emit('close');
        await closing;
      };
      return listener;
    };
    return transport;
  };
}
