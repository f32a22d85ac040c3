import { expect, test } from 'bun:test';
import { createServer, type Server } from 'node:net';
import { checkPortsFree, PortInUseError } from './ports-free.ts';

function listening(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    });
  });
}

test('free ports and 0 pass; the first port taken is EADDRINUSE naming its flag, with a hint', async () => {
  const taken = await listening();
  const free = await listening();
  const freePort = free.port;
  await new Promise<void>((r) => free.server.close(() => r()));
  try {
    await checkPortsFree([
      { flag: '--port', host: '127.0.0.1', port: freePort },
      { flag: '--tcp-port', host: '127.0.0.1', port: 0 },
    ]);
    let caught: unknown;
    try {
      await checkPortsFree([
        { flag: '--port', host: '127.0.0.1', port: freePort },
        { flag: '--tcp-port', host: '127.0.0.1', port: taken.port },
      ]);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PortInUseError);
    expect(caught).toMatchObject({ code: 'EADDRINUSE' });
    expect(String((caught as Error).message)).toStartWith(
      `--tcp-port ${taken.port}: a port on 127.0.0.1 is in use`,
    );
    expect((caught as PortInUseError).hint).toContain('0 for any free one');
  } finally {
    await new Promise<void>((r) => taken.server.close(() => r()));
  }
});
