import { createServer } from 'node:net';

/** A port a process was told to listen on is taken (by another node or relay, most likely). */
export class PortInUseError extends Error {
  readonly code = 'EADDRINUSE';
  readonly hint = 'another process listens there: pick another port, or 0 for any free one';
  constructor(flag: string, host: string, detail: string) {
    super(`${flag}: a port on ${host} is in use${detail ? ` (${detail})` : ''}`);
    this.name = 'PortInUseError';
  }
}

/** A port to look at: the flag that set it (for the error), its host and number (0: any, not looked at). */
export interface FixedPort {
  flag: string;
  host: string;
  port: number;
}

/**
 * The fixed ports are free: each is listened on and closed again, and the first one taken is a
 * PortInUseError naming its flag, before anything is written or started. (A port taken between this
 * look and the real listen still fails the start, later.)
 */
export async function checkPortsFree(ports: readonly FixedPort[]): Promise<void> {
  for (const { flag, host, port } of ports.filter((p) => p.port !== 0)) {
    await new Promise<void>((resolve, reject) => {
      const server = createServer();
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE'
            ? new PortInUseError(
                `${flag} ${port}`,
                host,
                `EADDRINUSE: address already in use ${host}:${port}`,
              )
            : e,
        ),
      );
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
    });
  }
}
