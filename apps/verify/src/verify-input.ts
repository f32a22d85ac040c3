import { duplicateMember, formatJsonPath } from '@synod/shared';

/**
 * What `synod-verify` is given, read without trusting it: a transcript (`{v, requestId, packets}`), or
 * a relay's answer that holds one (`GET /v1/verify/:id`, a line of a `history prune` archive, or a body
 * for `POST /v1/verify`: `{transcript, expectedVerdictDigest?, expectedRoot?}`). Only the transcript is
 * used; whatever else the source says about it (its verdict, digest, root, request id, status, the
 * coordinator's signed verdict) is compared with what is derived here, never taken for it.
 */
export interface VerifyInput {
  transcript: unknown;
  /** What the source claims of the transcript's verdict, when it claims it (compared, not trusted). */
  claimed: {
    verdictDigest?: string;
    root?: string;
    requestId?: string;
    /** The verdict object itself (`GET /v1/verify/:id`'s `verdict`), compared by its digest. */
    verdict?: unknown;
    /** The request's status (an archive line's): `verdict` for an accepted verdict, or `no-consensus`. */
    status?: string;
  };
  /** The nodes' attestation packets the source gives beside the transcript (checked, not trusted). */
  attestations?: unknown[];
  /**
   * The coordinator's signed verdict packet the source gives (an archive line's `verdict`, a relay
   * answer's `verdictPacket`): checked.
   */
  verdictPacket?: unknown;
  /**
   * A verdict's re-embedding claims given beside the transcript (`POST /v1/verify`'s `reembedded`), used
   * when neither a signed verdict packet nor a shown verdict carries them.
   */
  reembedded?: unknown;
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

/**
 * `VERIFY_USAGE`: the command line itself is wrong (an unknown flag, a value out of range);
 * `VERIFY_RATE_LIMITED`: a relay kept answering 429 past the retries (fetch-text.ts `RATE_LIMIT`).
 */
export type VerifyInputErrorCode =
  | 'VERIFY_INPUT_INVALID'
  | 'VERIFY_INPUT_TOO_LARGE'
  | 'VERIFY_USAGE'
  | 'VERIFY_RATE_LIMITED';

/** Whether `e` is a relay's rate limit waited out in vain: a request not checked, not one that fails. */
export function isRateLimited(e: unknown): boolean {
  return e instanceof VerifyInputError && e.code === 'VERIFY_RATE_LIMITED';
}

/** The input read from `text`; `from` names where it came from in the errors (`the file x.json`). */
export function readVerifyInput(text: string, from = 'the input'): VerifyInput {
  if (text.trim() === '') throw new VerifyInputError(`${from} is empty`);
  const v = parseUniqueJson(text, from);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new VerifyInputError('expected a transcript or an object holding one');
  }
  const o = v as Record<string, unknown>;
  if ('packets' in o && 'transcript' in o) {
    throw new VerifyInputError(
      'both a bare transcript (packets) and a transcript member: give one ({v, requestId, packets} or {transcript, …})',
    );
  }
  if ('packets' in o) {
    notATranscript(o, 'the input');
    return { transcript: o, claimed: {} };
  }
  if (!('transcript' in o)) {
    throw new VerifyInputError('no transcript here: expected {v, requestId, packets} or {transcript, …}');
  }
  if (o['transcript'] === null && typeof o['status'] === 'string' && 'requestId' in o) {
    // An archived request that was never sealed (`synod-relay history prune`): nothing to re-derive.
    const about = [
      `status ${o['status']}`,
      typeof o['error'] === 'string' ? `error ${o['error']}` : null,
    ].filter((x) => x !== null);
    throw new VerifyInputError(
      `no transcript: the request was never sealed, so it has no verdict to re-derive (${about.join(', ')})`,
    );
  }
  notATranscript(o['transcript'], 'its transcript member');
  const claimed: VerifyInput['claimed'] = {};
  const digest = o['verdictDigest'] ?? o['expectedVerdictDigest'];
  const root = o['transcriptRoot'] ?? o['expectedRoot'];
  const claimedDigest = claimOf(digest);
  const claimedRoot = claimOf(root);
  if (claimedDigest !== undefined) claimed.verdictDigest = claimedDigest;
  if (claimedRoot !== undefined) claimed.root = claimedRoot;
  const requestId = o['requestId'];
  if (requestId !== undefined && requestId !== null) claimed.requestId = claimOfText(requestId);
  const status = o['status'];
  if (status !== undefined && status !== null) claimed.status = claimOfText(status);
  // A relay's answer carries the verdict object and (since GET /v1/verify/:id gives it) the coordinator's
  // signed packet of it, `verdictPacket`; an archive line, the signed packet as its `verdict`.
  const verdict = o['verdict'];
  const signed = isPacketLike(verdict);
  if (verdict !== undefined && verdict !== null && !signed) claimed.verdict = verdict;
  const packet = signed ? verdict : o['verdictPacket'];
  const attestations = o['attestations'];
  const reembedded = o['reembedded'];
  return {
    transcript: o['transcript'],
    claimed,
    ...(reembedded !== undefined && reembedded !== null ? { reembedded } : {}),
    ...(Array.isArray(attestations) ? { attestations } : {}),
    ...(packet !== undefined && packet !== null ? { verdictPacket: packet } : {}),
  };
}

/**
 * Throws unless `v` is shaped as a transcript: an object holding a `packets` array. Anything else (a
 * string, `{}`, `{"packets": 5}`, null) is not a transcript at all, exit code 2 as every input that is
 * not one; a transcript whose packets or other members are wrong is verified, and does not hold (exit
 * code 1, `TRANSCRIPT_INVALID` naming each problem).
 */
function notATranscript(v: unknown, what: string): void {
  const packets =
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? (v as { packets?: unknown }).packets
      : undefined;
  if (Array.isArray(packets)) return;
  const is =
    v === null
      ? 'null'
      : Array.isArray(v)
        ? 'an array'
        : typeof v === 'object'
          ? 'an object without a packets array'
          : `a ${typeof v}`;
  throw new VerifyInputError(
    `no transcript here: ${what} is ${is}, not a transcript {v, requestId, packets: [...]}`,
  );
}

/**
 * The JSON value of `text` (a leading byte order mark skipped, as some editors save one: RFC 8259 §8.1),
 * refused when it is not JSON or when an object in it names a member twice: `JSON.parse` keeps the last
 * value and other readers the first, so a transcript holding `"output":"FORGED","output":"<genuine>"`
 * would be said to hold here while another reader of the same file reads the forged output.
 */
export function parseUniqueJson(text: string, from: string): unknown {
  const json = text.replace(/^\uFEFF/, '');
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new VerifyInputError(`${from} is not JSON: ${(e as Error).message}`);
  }
  const twice = duplicateMember(json);
  if (twice) {
    throw new VerifyInputError(
      `${from} names "${twice.name.slice(0, 64)}" twice in ${formatJsonPath(twice.path)}: JSON readers differ on which value they keep, so it is refused, not verified`,
    );
  }
  return v;
}

/** A text claim as given; anything else as its JSON, so that it is compared (and differs). */
function claimOfText(v: unknown): string {
  return shownValue(v);
}

/**
 * A value a source gave, as text to compare and show: a string as it is; anything else as its JSON, cut
 * at 200 characters, or said to be too deeply nested to show (JSON.parse reads nesting JSON.stringify
 * cannot write back: a claim 200,000 arrays deep crashed the verifier).
 */
export function shownValue(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    const text = JSON.stringify(v) ?? String(v);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    return '(a value too deeply nested to show)';
  }
}

/** Whether a value is shaped as a signed packet (`type` and `sig`), not a bare verdict object. */
function isPacketLike(v: unknown): boolean {
  return v !== null && typeof v === 'object' && 'type' in v && 'sig' in v;
}

/**
 * What a source claims for a digest: 64 hex digits (any case, `0x` or not) as lowercase hex; anything
 * else it gave, as it gave it, so that it is compared (and differs), never passed over as if the
 * source had claimed nothing. Null or absent is no claim.
 */
function claimOf(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return shownValue(v);
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
