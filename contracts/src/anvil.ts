import { dirname, join } from 'node:path';
import type { Subprocess } from 'bun';
import { createTestClient, type Hex, http, type PrivateKeyAccount, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/** A local chain: anvil (Foundry's dev node, from the npm package `@foundry-rs/anvil`) on 127.0.0.1. */
export interface RunningAnvil {
  url: string;
  port: number;
  chainId: number;
  proc: Subprocess;
  stop(): Promise<void>;
}

export interface AnvilOptions {
  /** Port on 127.0.0.1; default: a free one. */
  port?: number;
  /** Chain id; default 31337. */
  chainId?: number;
  /** Seconds between blocks; default: a block per transaction (automine). */
  blockTimeSeconds?: number;
  /**
   * States of past blocks kept, in memory only (`--prune-history`): calls at a block older than that
   * fail (an audit then says the refund's fit is not re-derivable). Default `ANVIL_STATES_KEPT`.
   */
  statesKept?: number;
}

/**
 * Past blocks' states anvil keeps (in memory) by default. Unbounded, a chain of a block a second grew
 * anvil to 390 MB in half an hour of `npm start`, then made it write a state file twice a second into
 * `~/.foundry/anvil/tmp` (1.9 GB an hour), left there after it stopped: 512 states (8.5 minutes at a
 * block a second) are ample for the watcher and the audits of a local chain.
 */
export const ANVIL_STATES_KEPT = 512;

/** The anvil binary of this platform's `@foundry-rs/anvil-<os>-<arch>` package. */
export function anvilBinary(): string {
  const os = process.platform === 'win32' ? 'win32' : process.platform;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const pkg = `@foundry-rs/anvil-${os}-${arch}`;
  const dir = dirname(Bun.resolveSync(`${pkg}/package.json`, import.meta.dir));
  return join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
}

async function rpc(url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const j = (await res.json()) as { result?: unknown; error?: { message: string } };
  if (j.error) throw new Error(`${method}: ${j.error.message}`);
  return j.result;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Start anvil bound to 127.0.0.1 (no fork, no network), and wait until it answers JSON-RPC. */
export async function startAnvil(o: AnvilOptions = {}): Promise<RunningAnvil> {
  const chainId = o.chainId ?? 31337;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    // Port 0 (or none): a free one, found here, as anvil's own `--port 0` leaves its URL unknown.
    const port = o.port === undefined || o.port === 0 ? await freePort() : o.port;
    const args = [
      anvilBinary(),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--chain-id',
      String(chainId),
    ];
    if (o.blockTimeSeconds !== undefined) args.push('--block-time', String(o.blockTimeSeconds));
    args.push('--prune-history', String(o.statesKept ?? ANVIL_STATES_KEPT));
    args.push('--silent');
    const proc = Bun.spawn(args, { stdout: 'ignore', stderr: 'pipe' });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && proc.exitCode === null) {
      try {
        await rpc(url, 'eth_chainId');
        return {
          url,
          port,
          chainId,
          proc,
          async stop() {
            if (proc.exitCode !== null || proc.signalCode !== null) return;
            proc.kill('SIGTERM');
            const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
            await proc.exited;
            clearTimeout(t);
          },
        };
      } catch (e) {
        lastError = e;
        await Bun.sleep(50);
      }
    }
    lastError = proc.exitCode !== null ? new Error(`anvil exited with ${proc.exitCode}`) : lastError;
    proc.kill('SIGKILL');
    await proc.exited;
  }
  throw new Error(`anvil did not start: ${String(lastError)}`);
}

/**
 * A fresh random account holding `ether` on an anvil (its `anvil_setBalance`; development chains only):
 * no key is ever hard-coded, and each caller gets its own.
 */
export async function fundedAccount(
  rpcUrl: string,
  ether = '100',
): Promise<{ key: Hex; account: PrivateKeyAccount }> {
  const key = generatePrivateKey();
  const account = privateKeyToAccount(key);
  const test = createTestClient({ mode: 'anvil', transport: http(rpcUrl) });
  await test.setBalance({ address: account.address, value: parseEther(ether) });
  return { key, account };
}
