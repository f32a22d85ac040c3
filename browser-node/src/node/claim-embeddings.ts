import {
  type EmbedClaimsEffect,
  type EmbeddingModelRef,
  fromHex,
  outputDigest,
  toHex,
  truncateBits,
  tryFromHex,
} from '@synod/shared';
import type { ServingConfig } from './synod-node.ts';

/**
 * How a member embeds the texts a verdict's re-embedding claims name before it attests the verdict
 * (`SynodNodeOptions.claimCheck`; the lifecycle's `embed-claims`, shared/src/lifecycle/attest.ts, judges
 * the bits). A member attests a verdict whose claims about other members' reveals it could check only
 * when each is its own embedding of that text.
 */
export interface ClaimCheckConfig {
  /** The embedder as frames pin it; `bits` is how many it gives (a frame may take a prefix). */
  embedder: EmbeddingModelRef;
  /** Packed sign bits of `text`'s embedding (`embedder.bits` of them, or hex of them). */
  embed(text: string): Promise<Uint8Array | string>;
  /**
   * How many bits a claim may be from this node's bits of its text and hold. Default 0, as
   * `synod-verify --reembed`: one embedder gives one text the same bits.
   */
  noiseToleranceBits?: number;
}

/**
 * What a node checks claims with: `claimCheck` when given, none when `false`, and by default the
 * embedder its inference queue embeds its own outputs with (the one it commits with), when it has one.
 */
export function claimCheckOf(
  claimCheck: ClaimCheckConfig | false | undefined,
  serving: ServingConfig | undefined,
): ClaimCheckConfig | null {
  if (claimCheck === false) return null;
  if (claimCheck !== undefined) return claimCheck;
  const embedder = serving?.queue.embedder;
  if (serving === undefined || embedder === undefined) return null;
  return { embedder: serving.embedder, embed: (text) => embedder.embedBits(text) };
}

/** Texts whose bits are kept (by their digest): a few verdicts' claims. */
const CLAIM_TEXTS_KEPT = 256;

/**
 * Most characters of texts not embedded yet that one verdict's claims may have this member embed (USE
 * Lite takes about 1 s for 32,768). A claim is rare (a member whose bits were not its text's) and an
 * honest answer short; a coordinator that names more (it chooses the frame, up to 128 seats, and can seal
 * keys of its own revealing long texts) gets no attestation rather than minutes of this member's embedder.
 */
export const CLAIM_CHECK_BUDGET_CHARS = 32_768;

/** How long one verdict's check may take before it is given up (not attested). */
export const CLAIM_CHECK_TIMEOUT_MS = 30_000;

/**
 * A member's embeddings of claimed texts: one embedding a distinct text (by its output digest, as the
 * relay caches its own), one verdict's check at a time and one text at a time, kept for the next claim
 * of it; at most `CLAIM_CHECK_BUDGET_CHARS` of new text a verdict.
 */
export class ClaimEmbeddings {
  readonly config: ClaimCheckConfig;
  readonly #kept = new Map<string, string>();
  /** The check under way: checks run one at a time, after it, so they never crowd the embedder. */
  #last: Promise<unknown> = Promise.resolve();
  /** Texts embedded (a text seen again is not). */
  embedded = 0;

  constructor(config: ClaimCheckConfig) {
    this.config = config;
  }

  /**
   * The bits (the frame's, hex) of each reveal `fx` lists, by reveal id; or why they could not be had
   * (the embedder threw, or gave another number of bits than it names, or not hex). Never rejects.
   */
  embed(
    fx: EmbedClaimsEffect,
  ): Promise<{ ok: true; bits: Record<string, string> } | { ok: false; error: string }> {
    // The time limit runs from now, the checks queued before it included.
    const deadline = performance.now() + CLAIM_CHECK_TIMEOUT_MS;
    const run = this.#last.then(() => this.#bounded(fx, deadline));
    // Never rejects (`#bounded` answers every failure): a check cannot stop the ones after it.
    this.#last = run.catch(() => undefined);
    return run;
  }

  /** `#embed`, answered by `deadline` (an embedder that hangs holds no check after it for long). */
  async #bounded(
    fx: EmbedClaimsEffect,
    deadline: number,
  ): Promise<{ ok: true; bits: Record<string, string> } | { ok: false; error: string }> {
    const timedOut = {
      ok: false as const,
      error: `not embedded within ${CLAIM_CHECK_TIMEOUT_MS} ms of being asked`,
    };
    const left = deadline - performance.now();
    if (left <= 0) return timedOut;
    const stop = { stopped: false };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<typeof timedOut>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), left);
      (timer as { unref?: () => void }).unref?.();
    });
    try {
      return await Promise.race([
        this.#embed(fx, stop).catch((e: unknown) => ({ ok: false as const, error: String(e) })),
        late,
      ]);
    } finally {
      // A check given up embeds no further text beside the next one.
      stop.stopped = true;
      clearTimeout(timer);
    }
  }

  async #embed(
    fx: EmbedClaimsEffect,
    stop: { stopped: boolean },
  ): Promise<{ ok: true; bits: Record<string, string> } | { ok: false; error: string }> {
    const mine = this.config.embedder;
    const fresh = new Map<string, number>();
    for (const { output } of fx.reveals) {
      const digest = outputDigest(output);
      if (!this.#kept.has(digest)) fresh.set(digest, output.length);
    }
    const chars = [...fresh.values()].reduce((sum, n) => sum + n, 0);
    if (chars > CLAIM_CHECK_BUDGET_CHARS) {
      return {
        ok: false,
        error: `the claims name ${chars} characters of text to embed, more than ${CLAIM_CHECK_BUDGET_CHARS} a verdict`,
      };
    }
    const bits: Record<string, string> = {};
    for (const { revealId, output } of fx.reveals) {
      const digest = outputDigest(output);
      let full = this.#kept.get(digest);
      if (full === undefined) {
        if (stop.stopped) return { ok: false, error: 'given up' };
        try {
          const out = await this.config.embed(output);
          full = typeof out === 'string' ? out : toHex(out);
        } catch (e) {
          return { ok: false, error: String(e) };
        }
        if (full.length !== mine.bits / 4) {
          return { ok: false, error: `the embedder gave ${full.length * 4} bits, not ${mine.bits}` };
        }
        if (tryFromHex(full) === null) return { ok: false, error: 'the embedder gave bits that are not hex' };
        this.embedded++;
        this.#kept.set(digest, full);
        if (this.#kept.size > CLAIM_TEXTS_KEPT) {
          const oldest = this.#kept.keys().next().value;
          if (oldest !== undefined) this.#kept.delete(oldest);
        }
      }
      const frameBits = fx.embeddingModel.bits;
      bits[revealId] = frameBits === mine.bits ? full : toHex(truncateBits(fromHex(full), frameBits));
    }
    return { ok: true, bits };
  }
}
