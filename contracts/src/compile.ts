import { readFileSync } from 'node:fs';
import solc from 'solc';
import type { Abi, Hex } from 'viem';

/** A compiled contract: what viem needs to deploy it and to call it. */
export interface CompiledContract {
  abi: Abi;
  bytecode: Hex;
}

/** A Solidity compile error (solc's own messages, one per line). */
export class SolidityCompileError extends Error {
  readonly code = 'SOLIDITY_COMPILE_FAILED';
  constructor(readonly errors: string[]) {
    super(`solc: ${errors.join('\n')}`);
    this.name = 'SolidityCompileError';
  }
}

interface SolcOutput {
  errors?: { severity: 'error' | 'warning' | 'info'; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
}

/**
 * Compile Solidity sources with solc-js (the npm `solc` package, no native compiler), optimizer on,
 * EVM version `cancun`. `sources` maps file names to their text. Every contract of every file is
 * returned by name; warnings are ignored, errors throw `SolidityCompileError`.
 */
export function compileSolidity(sources: Record<string, string>): Record<string, CompiledContract> {
  const input = {
    language: 'Solidity',
    sources: Object.fromEntries(Object.entries(sources).map(([name, content]) => [name, { content }])),
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error').map((e) => e.formattedMessage);
  if (errors.length > 0) throw new SolidityCompileError(errors);
  const compiled: Record<string, CompiledContract> = {};
  for (const file of Object.values(out.contracts ?? {})) {
    for (const [name, c] of Object.entries(file)) {
      compiled[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
    }
  }
  return compiled;
}

/** The oracle's Solidity source, as shipped in this package. */
export function oracleSource(): string {
  return readFileSync(new URL('./SynodOracle.sol', import.meta.url), 'utf8');
}

let oracle: CompiledContract | undefined;

/** SynodOracle compiled from its source (once per process; solc-js takes about a second). */
export function compileOracle(): CompiledContract {
  if (oracle === undefined) {
    const c = compileSolidity({ 'SynodOracle.sol': oracleSource() })['SynodOracle'];
    if (c === undefined) throw new SolidityCompileError(['SynodOracle.sol has no contract SynodOracle']);
    oracle = c;
  }
  return oracle;
}
