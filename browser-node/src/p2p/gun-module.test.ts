import { expect, test } from 'bun:test';
import { resolve } from 'node:path';

/** What a fresh Bun prints running `code` (an ES module) in this folder. */
async function printed(code: string): Promise<string> {
  const p = Bun.spawn([process.execPath, '-e', code], {
    cwd: import.meta.dir,
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [out, err] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return out + err;
}

test('Gun from gun-module.ts prints no banner, and console.log is itself again once it is loaded', async () => {
  const module = JSON.stringify(resolve(import.meta.dir, 'gun-module.ts'));
  const log = 'console.log("after", typeof Gun, console.log.name)';
  // The banner is there when Gun is imported as it is: the check below would see it.
  expect(await printed(`import Gun from 'gun'; ${log}`)).toContain('Hello wonderful person!');
  expect(await printed(`import Gun from ${module}; ${log}`)).toBe('after function log\n');
});
