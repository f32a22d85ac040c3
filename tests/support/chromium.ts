/**
 * Headless Chromium for the browser suites: Debian's /usr/bin/chromium driven by playwright-core, with
 * background networking off (this machine's network is closed) and a fresh profile that `close()`
 * removes. `webgpu` adds --enable-unsafe-webgpu, which gives a real SwiftShader WebGPU adapter.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
] as const;

export interface Chrome {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(options: { webgpu?: boolean } = {}): Promise<Chrome> {
  const profile = mkdtempSync(join(tmpdir(), 'synod-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(options.webgpu ? ['--enable-unsafe-webgpu'] : [])],
    });
    return {
      context,
      async close() {
        await context.close().catch(() => {});
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}

/** Poll `probe` until it returns something truthy; fail after `timeoutMs`. Never a fixed sleep. */
export async function until<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 90_000,
): Promise<NonNullable<T>> {
  const start = Date.now();
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(100);
  }
}
