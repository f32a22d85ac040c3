export { type AnvilOptions, anvilBinary, fundedAccount, type RunningAnvil, startAnvil } from './anvil.ts';
export { rpcChain } from './chain.ts';
export {
  type CompiledContract,
  compileOracle,
  compileSolidity,
  oracleSource,
  SolidityCompileError,
} from './compile.ts';
export { deployOracle, type OracleSettings } from './deploy.ts';
export { synodOracleAbi } from './oracle-abi.ts';
export { NoOracleRequestError, requestedNumbers } from './requested.ts';
