export { LocalFileError, type LocalFileErrorCode } from './file-error.ts';
export {
  IdentityInUseError,
  loadOrCreateIdentity,
  lockIdentity,
  lockNodeKey,
  newKeyPassphraseProblem,
} from './identity-file.ts';
export { renderNodeMetrics } from './metrics-text.ts';
export { type NodeCliOptions, nodeCommand, parseNodeArgs, type RunningNode, runNode } from './node-main.ts';
export { watchPeers } from './peer-watch.ts';
export { checkPortsFree, type FixedPort, PortInUseError } from './ports-free.ts';
export { ownerOnlyFile, writeOwnerOnlyFile } from './private-file.ts';
