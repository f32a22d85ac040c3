/**
 * What `synod-verify` is given, read without trusting it: a transcript (`{v, requestId, packets}`), or
 * a relay's answer that holds one (`GET /v1/verify/:id`, or a body for `POST /v1/verify`:
 * `{transcript, expectedVerdictDigest?, expectedRoot?}`). Only the transcript is used; whatever else
 * the source says about its verdict is reported beside the local result, never taken for it.
 */
export interface VerifyInput {
  transcript: unknown;
  /** The verdict digest and root the source claims, when it claims any (compared, not trusted). */
  claimed: { verdictDigest?: string; root?: string };
  /** The nodes' attestation packets the source gives beside the transcript (checked, not trusted). */
  attestations?: unknown[];
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Why there is nothing to verify (exit code 2, with the reason): `VERIFY_INPUT_INVALID`,
 * `VERIFY_INPUT_TOO_LARGE` for a source larger than any transcript (fetch-text.ts), or `VERIFY_USAGE`
 * for a command line that is wrong (main.ts).
 */
export class VerifyInputError extends Error {
  readonly code: VerifyInputErrorCode;
  constructor(message: string, code: VerifyInputErrorCode = 'VERIFY_INPUT_INVALID') {
    super(message);
    this.name = 'VerifyInputError';
    this.code = code;
  }
}

/** `VERIFY_USAGE`: the command line itself is wrong (an unknown flag, a value out of range). */
export type VerifyInputErrorCode = 'VERIFY_INPUT_INVALID' | 'VERIFY_INPUT_TOO_LARGE' | 'VERIFY_USAGE';

/** The input read from `text`; `from` names where it came from in the errors (`the file x.json`). */
export function readVerifyInput(text: string, from = 'the input'): VerifyInput {
  if (text.trim() === '') throw new VerifyInputError(`${from} is empty`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new VerifyInputError(`${from} is not JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new VerifyInputError('expected a transcript or an object holding one');
  }
  const o = v as Record<string, unknown>;
  if ('packets' in o) return { transcript: o, claimed: {} };
  if (!('transcript' in o)) {
    throw new VerifyInputError('no transcript here: expected {v, requestId, packets} or {transcript, …}');
  }
  if (o['transcript'] === null) {
    // An archived request that was never sealed (`synod-relay history prune`): nothing to re-derive.
    const about = [
      typeof o['status'] === 'string' ? `status ${o['status']}` : null,
      typeof o['error'] === 'string' ? `error ${o['error']}` : null,
    ].filter((x) => x !== null);
    throw new VerifyInputError(
      `no transcript: the request was never sealed, so it has no verdict to re-derive${about.length > 0 ? ` (${about.join(', ')})` : ''}`,
    );
  }
  const claimed: VerifyInput['claimed'] = {};
  const digest = o['verdictDigest'] ?? o['expectedVerdictDigest'];
  const root = o['transcriptRoot'] ?? o['expectedRoot'];
  const claimedDigest = claimOf(digest);
  const claimedRoot = claimOf(root);
  if (claimedDigest !== undefined) claimed.verdictDigest = claimedDigest;
  if (claimedRoot !== undefined) claimed.root = claimedRoot;
  const attestations = o['attestations'];
  return { transcript: o['transcript'], claimed, ...(Array.isArray(attestations) ? { attestations } : {}) };
}

/**
 * What a source claims for a digest: 64 hex digits (any case, `0x` or not) as lowercase hex; anything
 * else it gave, as it gave it, so that it is compared (and differs), never passed over as if the
 * source had claimed nothing. Null or absent is no claim.
 */
function claimOf(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return JSON.stringify(v);
  const hex = v.toLowerCase().replace(/^0x/, '');
  return HEX64.test(hex) ? hex : v;
}

/** A digest given on the command line: 64 hex digits, with or without `0x` (as the chain shows it). */
export function parseDigest(flag: string, value: string): string {
  const hex = value.toLowerCase().replace(/^0x/, '');
  if (!HEX64.test(hex))
    throw new VerifyInputError(`${flag} must be 64 hex digits (0x optional)`, 'VERIFY_USAGE');
  return hex;
}
