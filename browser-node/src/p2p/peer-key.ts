import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { joinBytes, type NodeKey, sha256, utf8 } from '@synod/shared';
import type { WakuRelayOptions } from './waku-relay.ts';

/** The key type libp2p takes (`createLibp2p`'s `privateKey`). */
type Libp2pKey = NonNullable<WakuRelayOptions['privateKey']>;

/** Domain of the libp2p key derived from a node key (never used to sign Synod packets). */
const DOMAIN = 'synod/v1/libp2p-peer-key';

/**
 * The libp2p identity of a node with this key: an Ed25519 key whose seed is
 * `sha256(utf8("synod/v1/libp2p-peer-key") ‖ 0x00 ‖ node key seed)`, so a headless node or relay keeps
 * its peer id (and so its multiaddrs, `…/p2p/<id>`) across restarts, as long as it keeps its identity
 * file, while the node key itself signs nothing but Synod packets. Without it libp2p makes a new key at
 * every start, and every `--bootstrap` address given out for the node stops working when it restarts.
 */
export async function libp2pKeyFor(key: NodeKey): Promise<Libp2pKey> {
  const seed = key.exportSeed();
  const derived = sha256(joinBytes([utf8(DOMAIN), new Uint8Array([0]), seed]));
  seed.fill(0);
  // @libp2p/crypto's key, typed against another copy of @libp2p/interface in node_modules than the
  // one libp2p's options are typed against: the same interface, two declarations of it.
  return (await generateKeyPairFromSeed('Ed25519', derived)) as unknown as Libp2pKey;
}
