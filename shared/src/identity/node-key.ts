import { fromHex, toHex } from '../encoding/bytes.ts';
import { SynodError } from '../errors.ts';
import { defaultEd25519, type Ed25519Backend } from './ed25519.ts';

/** A node id is the lowercase hex of the node's 32-byte Ed25519 public key. */
export type NodeId = string;

const NODE_ID_RE = /^[0-9a-f]{64}$/;

export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'string' && NODE_ID_RE.test(value);
}

/** A node's signing identity. The seed never leaves this object except through `exportSeed`. */
export class NodeKey {
  readonly nodeId: NodeId;
  readonly publicKey: Uint8Array;
  readonly #seed: Uint8Array;
  readonly #backend: Ed25519Backend;

  private constructor(seed: Uint8Array, publicKey: Uint8Array, backend: Ed25519Backend) {
    this.#seed = seed;
    this.publicKey = publicKey;
    this.nodeId = toHex(publicKey);
    this.#backend = backend;
  }

  /** A key from a 32-byte seed. The seed is copied. */
  static async fromSeed(seed: Uint8Array, backend?: Ed25519Backend): Promise<NodeKey> {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) {
      throw new SynodError('KEY_INVALID', 'an Ed25519 seed is 32 bytes');
    }
    const b = backend ?? (await defaultEd25519());
    const copy = seed.slice();
    return new NodeKey(copy, await b.publicKeyFromSeed(copy), b);
  }

  /**
   * A fresh key from the runtime's CSPRNG. Randomness is the caller's (adapter's) concern in the core,
   * so it is passed in; `crypto.getRandomValues` is the default for convenience at the edges.
   */
  static async generate(
    random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n)),
    backend?: Ed25519Backend,
  ): Promise<NodeKey> {
    return NodeKey.fromSeed(random(32), backend);
  }

  sign(message: Uint8Array): Promise<Uint8Array> {
    return this.#backend.sign(this.#seed, message);
  }

  exportSeed(): Uint8Array {
    return this.#seed.slice();
  }
}

export async function verifySignature(
  nodeId: NodeId,
  message: Uint8Array,
  signature: Uint8Array,
  backend?: Ed25519Backend,
): Promise<boolean> {
  if (!isNodeId(nodeId) || signature.length !== 64) return false;
  const b = backend ?? (await defaultEd25519());
  return b.verify(fromHex(nodeId), message, signature);
}
