/**
 * Whether a transcript's request is the question asked on chain (a SynodOracle's `LLMRequested`): what
 * the event fixes (prompt, accepted models, max tokens, temperature, quorum, the transaction), and what
 * the protocol fixes for every chain request (docs/protocol.md, "Chain settlement"): `params` are just
 * `{maxTokens, temperature}`, and the frame is `resolveFrame({quorum})`, every other field at its
 * default (only the embedder is the relay's to pin). A coordinator that answered a chain request under
 * a looser frame (a smaller agreement, a wider radius, longer windows) or other sampling would
 * otherwise write an answer on chain that holds for the frame it chose, not for the one asked.
 */
import { FRAME_DEFAULTS } from '@synod/shared';
import type { Hex } from 'viem';

/** The question of an `LLMRequested` event. */
export interface Asked {
  prompt: string;
  acceptedModels: readonly string[];
  maxTokens: number;
  temperatureCenti: number;
  quorum: number;
  txHash: Hex;
}

/** The frame fields a chain request does not choose, with the value each must have for `quorum`. */
function chainFrame(quorum: number): Record<string, number> {
  return {
    maxCommits: quorum,
    secDistance: FRAME_DEFAULTS.secDistance,
    secPercentage: FRAME_DEFAULTS.secPercentage,
    maxTimeMs: FRAME_DEFAULTS.maxTimeMs,
    revealWindowMs: FRAME_DEFAULTS.revealWindowMs,
  };
}

/** How the transcript's request differs from the question asked on chain, one line each. */
export function questionMismatches(transcript: unknown, asked: Asked | undefined): string[] {
  if (!asked) return ['the oracle has no LLMRequested event for this request number'];
  const request = (
    transcript as { packets?: { type?: string; body?: Record<string, unknown> }[] } | null
  )?.packets?.find((p) => p?.type === 'request')?.body;
  if (!request || typeof request !== 'object') return [];
  const out: string[] = [];
  const params = request['params'] as Record<string, unknown> | undefined;
  const frame = request['frame'] as Record<string, unknown> | undefined;
  const origin = request['origin'] as { txHash?: string } | undefined;
  if (request['prompt'] !== asked.prompt)
    out.push('the transcript answers another prompt than the one asked on chain');
  if (JSON.stringify(request['acceptedModels']) !== JSON.stringify(asked.acceptedModels)) {
    out.push('the transcript accepts other models than the ones asked for on chain');
  }
  if (params?.['maxTokens'] !== asked.maxTokens || params?.['temperature'] !== asked.temperatureCenti / 100) {
    out.push('the transcript was generated with other parameters than the ones asked for on chain');
  }
  // A chain request sets no seed, topP or topK: any of them is sampling the asker did not choose.
  const extra = Object.keys(params ?? {}).filter((k) => k !== 'maxTokens' && k !== 'temperature');
  if (extra.length > 0) {
    out.push(`the transcript's request sets ${extra.join(', ')}, which a chain request does not`);
  }
  // The quorum paid for on chain: a transcript with a smaller one would answer with fewer nodes.
  if (frame?.['quorum'] !== asked.quorum) {
    out.push(`the transcript's quorum is ${frame?.['quorum']}, not the ${asked.quorum} asked for on chain`);
  }
  for (const [field, value] of Object.entries(chainFrame(asked.quorum))) {
    if (frame?.[field] !== value) {
      out.push(
        `the transcript's frame has ${field} ${JSON.stringify(frame?.[field])}, not the ${value} of a chain request`,
      );
    }
  }
  if (origin?.txHash !== asked.txHash.toLowerCase()) {
    out.push(`the transcript's request names transaction ${origin?.txHash}, not ${asked.txHash}`);
  }
  return out;
}
