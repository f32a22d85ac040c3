/**
 * The commands the packages declare work on a fresh `npm install --ignore-scripts`, where nothing is
 * installed globally:
 *   - every root npm script that runs `bun` first runs `scripts/ensure-bun.mjs`, which links Bun's real
 *     binary (the `bun` npm package ships a placeholder and links it in the postinstall script that
 *     `--ignore-scripts` skips);
 *   - every workspace's `bin` is a file npm can link and a shell can run: executable, with a
 *     `#!/usr/bin/env bun` line, and `--help` through the link exits 0.
 */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { freePort } from '../edge/src/test-servers.ts';

const ROOT = resolve(import.meta.dir, '..');
const ENSURE_BUN = 'node scripts/ensure-bun.mjs';

interface Manifest {
  name: string;
  scripts?: Record<string, string>;
  workspaces?: string[];
  bin?: Record<string, string>;
}

function manifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
}

/** The workspace folders of the root manifest (`apps/*` expanded). */
function workspaceDirs(): string[] {
  const patterns = manifest(ROOT).workspaces ?? [];
  return patterns.flatMap((p) =>
    p.endsWith('/*')
      ? [...new Bun.Glob(`${p.slice(0, -2)}/*/package.json`).scanSync({ cwd: ROOT })].map((f) =>
          join(ROOT, f.slice(0, -'/package.json'.length)),
        )
      : [join(ROOT, p)],
  );
}

/** A step of a script that runs `bun` (`exec bun …` or `bun …`). */
const BUN_STEP = /^(exec\s+)?bunx?(\s|$)/;

/** The scripts that run `bun` in a step before (or without) a step that runs ensure-bun. */
function scriptsRunningBunUnprepared(scripts: Record<string, string>): string[] {
  return Object.entries(scripts)
    .filter(([, command]) => {
      const steps = command.split('&&').map((s) => s.trim());
      const firstBun = steps.findIndex((s) => BUN_STEP.test(s));
      return firstBun >= 0 && !steps.slice(0, firstBun).includes(ENSURE_BUN);
    })
    .map(([name]) => name);
}

/**
 * The scripts whose `bun` step is not `exec bun`: npm runs a script in `sh -c`, which does not pass on a
 * SIGTERM it gets (a supervisor, `docker stop`), so the shell died and Bun ran on, orphaned.
 */
function scriptsNotExecingBun(scripts: Record<string, string>): string[] {
  return Object.entries(scripts)
    .filter(([, command]) => {
      const steps = command.split('&&').map((s) => s.trim());
      return steps.some((s) => BUN_STEP.test(s) && !s.startsWith('exec '));
    })
    .map(([name]) => name);
}

describe('npm scripts', () => {
  test('the check finds a script that runs bun without ensure-bun first', () => {
    expect(
      scriptsRunningBunUnprepared({
        ok: `${ENSURE_BUN} && bun x.ts`,
        late: `bun x.ts && ${ENSURE_BUN}`,
        bare: 'bun x.ts',
        after: `drizzle-kit generate && bun y.ts`,
        node: 'biome check .',
      }),
    ).toEqual(['late', 'bare', 'after']);
  });

  test('every root script that runs bun runs ensure-bun first', () => {
    expect(scriptsRunningBunUnprepared(manifest(ROOT).scripts ?? {})).toEqual([]);
  });

  test('the check finds a script that runs bun under the shell instead of in its place', () => {
    expect(
      scriptsNotExecingBun({
        ok: `${ENSURE_BUN} && exec bun x.ts`,
        shell: `${ENSURE_BUN} && bun x.ts`,
        node: 'biome check .',
      }),
    ).toEqual(['shell']);
  });

  test('every root script that runs bun execs it, so a signal to npm reaches it', () => {
    expect(scriptsNotExecingBun(manifest(ROOT).scripts ?? {})).toEqual([]);
  });

  test('SIGTERM to `npm run relay` stops the relay cleanly: its last line is `stopped`, its port closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-npm-relay-'));
    const port = await freePort();
    const npm = Bun.spawn(
      [
        'npm',
        'run',
        '--silent',
        'relay',
        '--',
        '--identity',
        join(dir, 'identity.json'),
        '--db',
        `file:${join(dir, 'relay.db')}`,
        '--port',
        String(port),
      ],
      {
        cwd: ROOT,
        env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
        stdout: 'pipe',
        stderr: 'pipe',
      },
    );
    const lines: string[] = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of npm.stdout) {
        buf += decoder.decode(chunk, { stream: true });
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
    })();
    const msgs = () =>
      lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string }).msg);
    try {
      const deadline = Date.now() + 60_000;
      while (!msgs().includes('relay started') && Date.now() < deadline) await Bun.sleep(50);
      expect(msgs()).toContain('relay started');
      npm.kill('SIGTERM');
      await npm.exited;
      // The relay's own last lines (an orphaned one would keep the pipe open and say nothing).
      const until = Date.now() + 15_000;
      while (msgs().at(-1) !== 'stopped' && Date.now() < until) await Bun.sleep(50);
      expect(msgs().at(-1)).toBe('stopped');
      await reading;
      expect(await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null)).toBeNull();
    } finally {
      if (npm.exitCode === null) npm.kill('SIGKILL');
      // A relay left running (what this test catches) is found by its folder, which is in its command line.
      Bun.spawnSync(['pkill', '-KILL', '-f', dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('workspace bins', () => {
  const bins = workspaceDirs().flatMap((dir) =>
    Object.entries(manifest(dir).bin ?? {}).map(([name, file]) => ({ name, path: join(dir, file) })),
  );

  test('the workspaces declare the four commands', () => {
    expect(bins.map((b) => b.name).sort()).toEqual(['synod', 'synod-oracle', 'synod-relay', 'synod-verify']);
  });

  for (const bin of bins) {
    test(`${bin.name} is executable and starts with #!/usr/bin/env bun`, () => {
      expect(readFileSync(bin.path, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env bun');
      expect(statSync(bin.path).mode & 0o111).toBe(0o111);
    });

    test(`${bin.name} --help runs through its node_modules/.bin link`, () => {
      const binDir = join(ROOT, 'node_modules/.bin');
      const run = Bun.spawnSync([join(binDir, bin.name), '--help'], {
        cwd: ROOT,
        // `#!/usr/bin/env bun` finds the Bun that runs this test, as npm's PATH finds the linked one.
        env: { ...process.env, PATH: [binDir, process.env['PATH'] ?? ''].join(delimiter) },
        stdout: 'pipe',
        stderr: 'pipe',
      });
      expect({ code: run.exitCode, stderr: run.stderr.toString() }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout.toString()).toContain(bin.name === 'synod' ? 'synod node' : bin.name);
    });
  }
});
