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
import { readFileSync, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

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

/** The scripts that run `bun` in a step before (or without) a step that runs ensure-bun. */
function scriptsRunningBunUnprepared(scripts: Record<string, string>): string[] {
  return Object.entries(scripts)
    .filter(([, command]) => {
      const steps = command.split('&&').map((s) => s.trim());
      const firstBun = steps.findIndex((s) => /^bunx?(\s|$)/.test(s));
      return firstBun >= 0 && !steps.slice(0, firstBun).includes(ENSURE_BUN);
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
