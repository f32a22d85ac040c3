#!/usr/bin/env bun
/**
 * `synod-relay`: the edge relay under Bun (the local default), with its libSQL history and an
 * in-process node on the Waku relay network. `bun edge/src/main.ts --help` for the flags.
 *
 * The relay itself is relay-cli.ts. This entry first leaves libSQL's native logging off unless the
 * operator set `RUST_LOG` (native-logs.cts), then loads it: with a dynamic import, as Bun links an entry's
 * static imports, and runs the CommonJS ones among them (libSQL's native module), before the entry's
 * first line.
 */
import './native-logs.cts';

const { main } = await import('./relay-cli.ts');
process.exit(await main(process.argv.slice(2)));
