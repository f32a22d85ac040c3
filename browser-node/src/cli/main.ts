#!/usr/bin/env bun
/** The `synod` command. `synod node …` runs a headless node; see `synod node --help`. */
import { nodeCommand } from './node-main.ts';

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'node':
    process.exit(await nodeCommand(rest));
    break;
  default: {
    // Asked for: the usage, exit 0. Anything else (no command, an unknown one): a usage error, exit 2.
    const asked = command === '--help' || command === '-h';
    const usage = 'usage: synod node [options]   (synod node --help for the options)';
    if (asked) console.log(usage);
    else console.error(command === undefined ? usage : `synod: unknown command ${command}\n${usage}`);
    process.exit(asked ? 0 : 2);
  }
}
