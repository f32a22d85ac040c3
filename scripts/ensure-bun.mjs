// Makes sure node_modules/.bin/bun is the real Bun binary. The `bun` npm package ships a placeholder
// and links the platform binary (from its optional dependency @oven/bun-<platform>, already installed
// by npm) in a postinstall script, which `npm install --ignore-scripts` skips. Runs under Node, in
// 0.1 s, and downloads nothing when the platform package is present.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = join(root, 'node_modules', 'bun');
const exe = join(pkg, 'bin', process.platform === 'win32' ? 'bun.exe' : 'bun.exe');
let size = 0;
try {
  size = statSync(exe).size;
} catch {
  console.error('ensure-bun: node_modules/bun is missing; run `npm install --ignore-scripts` first');
  process.exit(1);
}
if (size < 1_000_000) {
  execFileSync(process.execPath, ['install.js'], { cwd: pkg, stdio: 'inherit' });
}
