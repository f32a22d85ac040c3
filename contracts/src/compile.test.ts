import { describe, expect, test } from 'bun:test';
import { compileOracle, compileSolidity, SolidityCompileError } from './compile.ts';
import { synodOracleAbi } from './oracle-abi.ts';

/** Run `f`, expecting it to throw a SolidityCompileError, and return that error. */
function compileErrorOf(f: () => unknown): SolidityCompileError {
  try {
    f();
  } catch (e) {
    if (e instanceof SolidityCompileError) return e;
    throw e;
  }
  throw new Error('expected a SolidityCompileError, but compilation succeeded');
}

describe('compileOracle', () => {
  test('the generated synodOracleAbi constant equals the ABI solc makes of SynodOracle.sol', () => {
    expect(compileOracle().abi).toEqual(synodOracleAbi);
  });

  test('the bytecode is non-empty 0x hex', () => {
    const { bytecode } = compileOracle();
    expect(bytecode).toMatch(/^0x([0-9a-f]{2})+$/);
    expect(bytecode.length).toBeGreaterThan(1000);
  });

  test('is compiled once per process (the same object is returned)', () => {
    expect(compileOracle()).toBe(compileOracle());
  });
});

describe('compileSolidity', () => {
  test('returns every contract of every source by name, with ABI and bytecode', () => {
    const out = compileSolidity({
      'A.sol':
        '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract A { function a() external pure returns (uint256) { return 1; } }\ncontract B {}',
      'C.sol': '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract C {}',
    });
    expect(Object.keys(out).sort()).toEqual(['A', 'B', 'C']);
    expect(out['A']?.abi).toEqual([
      {
        inputs: [],
        name: 'a',
        outputs: [{ internalType: 'uint256', name: '', type: 'uint256' }],
        stateMutability: 'pure',
        type: 'function',
      },
    ]);
    expect(out['C']?.bytecode).toMatch(/^0x([0-9a-f]{2})+$/);
  });

  test('a syntax error throws SolidityCompileError with code SOLIDITY_COMPILE_FAILED naming the problem', () => {
    const err = compileErrorOf(() =>
      compileSolidity({
        'Broken.sol':
          '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract Broken { function f( public {} }',
      }),
    );
    expect(err.code).toBe('SOLIDITY_COMPILE_FAILED');
    expect(err.name).toBe('SolidityCompileError');
    expect(err.errors.length).toBeGreaterThan(0);
    expect(err.errors.join('\n')).toContain('ParserError');
    expect(err.errors.join('\n')).toContain('Broken.sol');
    expect(err.message).toContain('ParserError');
  });

  test('a type error (not only syntax) is reported too; warnings alone do not throw', () => {
    const err = compileErrorOf(() =>
      compileSolidity({
        'Typed.sol':
          '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract Typed { function f() external pure returns (uint256) { return "x"; } }',
      }),
    );
    expect(err.errors.join('\n')).toContain('TypeError');
    // An unused local variable is only a warning.
    const ok = compileSolidity({
      'Warn.sol':
        '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract Warn { function f() external pure { uint256 unused; } }',
    });
    expect(Object.keys(ok)).toEqual(['Warn']);
  });
});
