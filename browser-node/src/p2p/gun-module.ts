/**
 * Gun without its welcome banner: every Synod module takes Gun from here, never from 'gun' itself.
 *
 * Gun prints "Hello wonderful person! …" with `console.log` the moment it is loaded. The relay's and the
 * node's standard output is one JSON object a line, which that line would break for whoever reads it with
 * `jq` or a log shipper. So Gun is loaded here with `require` (synchronous, so nothing else runs
 * meanwhile) while `console.log` drops that one line, and `console.log` is put back at once after.
 * (An `import` cannot do this: Bun evaluates a CommonJS package before the ES modules that import it.)
 */
import { createRequire } from 'node:module';
import type GunType from 'gun';

const WELCOME = 'Hello wonderful person!';

function loadGun(): typeof GunType {
  const log = console.log;
  console.log = (...args: unknown[]): void => {
    if (typeof args[0] === 'string' && args[0].startsWith(WELCOME)) return;
    log.apply(console, args);
  };
  try {
    return createRequire(import.meta.url)('gun') as typeof GunType;
  } finally {
    console.log = log;
  }
}

const Gun = loadGun();
export default Gun;
