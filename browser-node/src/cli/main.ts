#!/usr/bin/env bun
/** The `synod` command. `synod node …` runs a headless node; see `synod node --help`. */
import { nodeCommand } from './node-main.ts';

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'node':
    process.exit(await nodeCommand(rest));
    break;
  default:
    console.log('usage: synod node [options]   (synod node --help for the options)');
    process.exit(command === undefined || command === '--help' ? 0 : 2);
}
