/**
 * One `LLMRefunded` event of a SynodOracle, checked as far as it can be from outside. The bridge refunds
 * with a stable reason (edge/src/chain/chain-watcher.ts); anyone may refund after the deadline, with any
 * reason. So, by who sent it and why:
 * - the bridge, `NO_CONSENSUS`: the request's transcript, fetched from the relay and re-derived here, must
 *   hold, be the question asked on chain, and yield no consensus. An accepted verdict refunded as
 *   `NO_CONSENSUS` denied the asker an answer the network reached: it fails, named as such.
 * - the bridge, `INVALID_INPUT` or `FRAME_OUT_OF_RANGE`: the question asked on chain is re-checked here
 *   (asked-input.ts); a question the protocol takes, refunded as invalid, fails.
 * - the bridge, `ANSWER_TOO_LARGE`: the relay must hold an accepted verdict of the question asked, and its
 *   winning answer's `fulfill` must not fit on the chain as it was just before the refund (answer-fit.ts:
 *   more gas than the block's limit, or EIP-7825's cap); an answer that fit, refunded, fails.
 * - anyone else (after the deadline), or a reason that cannot be re-derived (timeouts, reorg conflicts,
 *   which models the network served, the relay's quota): reported as not re-derivable, with the reason
 *   and who sent it, neither holding nor failing.
 * Whatever the reason (but the bridge's `ANSWER_TOO_LARGE`, checked as above), a relay holding an
 * accepted verdict of that very question fails the refund: an answer existed and was not delivered. Unless
 * someone else than the bridge refunded (after the deadline) before the answer came: the last reveal the
 * verdict counted signed after the refund's block time (`lastRevealAt`), no answer existed to deliver;
 * said, not failed. (Nodes sign
 * reveals by their own clocks, which the protocol holds within 2 minutes of their peers'.) The bridge's
 * refund fails whenever the answer came: the relay it speaks for should have waited for it.
 */

import { ANSWER_TOO_LARGE } from '@synod/contracts/settlement-gas';
import type { Address, Hex } from 'viem';
import type { AnswerFit } from './answer-fit.ts';
import { type AskedBytes, type InputProblems, inputProblems } from './asked-input.ts';
import { countSigner, type Verified } from './audit.ts';
import { type Asked, questionMismatches } from './chain-question.ts';
import { checkDeclines } from './declines.ts';
import { describeAnswer, fetchText } from './fetch-text.ts';
import { type CoordinatorPin, reasonsOf, verifyInput } from './report.ts';
import { isRateLimited, parseUniqueJson, readVerifyInput, VerifyInputError } from './verify-input.ts';

/** An `LLMRefunded` event. */
export interface Refund {
  requestNo: bigint;
  reason: string;
  txHash: Hex;
}

/** A refund audited: `holds` and `fails` as an answer's audit; `not-re-derivable` counts as neither. */
export interface RefundAudit {
  requestId: string;
  /** The reason written on chain. */
  reason: string;
  txHash: Hex;
  /** Who sent the refund, and whether that was the oracle's bridge when it was mined. */
  sender: Address;
  byBridge: boolean;
  outcome: 'holds' | 'fails' | 'not-re-derivable';
  /** Why it fails (each reason); else what was re-derived, or why it cannot be. */
  why: string[];
}

/** What cannot be re-derived from outside about the reasons the bridge refunds with. */
const NOT_REDERIVABLE: Record<string, string> = {
  QUEUE_TIMEOUT: 'a timeout: how long the relay queued it is known only to the relay',
  QUORUM_NOT_MET: 'a timeout: which nodes committed in time is known only to the coordinator',
  COORDINATOR_RESTARTED: 'a failure of the relay, known only to it',
  COORDINATOR_FAILED: 'a failure of the relay, known only to it',
  COORDINATOR_GONE:
    'a coordinator that stopped and never came back, known only to the relays over its database',
  EXPIRED: 'an expiry: what happened in time is known only to the relay',
  FAILED: 'a failure of the relay, known only to it',
  REORG_CONFLICT:
    'a reorg conflict: which question the relay admitted first under this number is its own record',
  UNKNOWN_MODEL: 'which models the network served when it was asked is not on chain',
  QUOTA_EXCEEDED: "the relay's quota is its own",
  PACKET_TOO_LARGE: "the request packet's size depends on the embedder the relay pins",
};

/** The reasons that say the input was invalid, re-checked here (asked-input.ts). */
const INPUT_REASONS = new Set<keyof InputProblems>(['INVALID_INPUT', 'FRAME_OUT_OF_RANGE']);

/** What the relay holds for a request: no verdict (404, 409), an answer that could not be read, or a transcript verified here. */
type RelayHeld =
  | { kind: 'none'; why: string }
  | { kind: 'unreadable'; why: string }
  | { kind: 'transcript'; verified: Verified }
  /** No verdict: the nodes declined it, their signed declines served beside the request packet. */
  | { kind: 'declined'; why: string; request: unknown; declines: unknown[] };

async function relayHeld(
  relay: string,
  requestId: string,
  timeoutS: number,
  pinned: CoordinatorPin | null,
): Promise<RelayHeld> {
  const url = `${relay}/v1/verify/${encodeURIComponent(requestId)}`;
  try {
    const r = await fetchText(url, timeoutS, 'transcript');
    if (r.status === 404 || r.status === 409) {
      const error = parseError(r.text);
      const why = `${r.status}${error ? ` ${error}` : ''}`;
      const declined = r.status === 409 ? declinedDetails(r.text) : null;
      return declined ? { kind: 'declined', why, ...declined } : { kind: 'none', why };
    }
    // A relay answers 422 with the transcript when it finds a stored one does not hold: verified here anyway.
    if (!r.ok && r.status !== 422) {
      return { kind: 'unreadable', why: `${url} answered ${r.status}: ${describeAnswer(r.text)}` };
    }
    const input = readVerifyInput(r.text);
    const report = await verifyInput(input, pinned === null ? {} : { coordinators: pinned });
    return { kind: 'transcript', verified: { input, report } };
  } catch (e) {
    // Rate-limited past the retries: not checked at all (the chain audit's to say), not unreadable.
    if (e instanceof VerifyInputError && !isRateLimited(e)) return { kind: 'unreadable', why: e.message };
    throw e;
  }
}

/** The request packet and declines a relay's 409 gives for a request the nodes declined, if it gives them. */
function declinedDetails(text: string): { request: unknown; declines: unknown[] } | null {
  try {
    // The declines are checked for someone: a text naming a member twice is refused, as every source is.
    const d = (
      parseUniqueJson(text, 'the relay answer') as { error?: { details?: Record<string, unknown> } } | null
    )?.error?.details;
    if (d?.['error'] !== 'DECLINED' || !Array.isArray(d['declines'])) return null;
    return { request: d['request'], declines: d['declines'] };
  } catch {
    return null;
  }
}

/** `CODE: message (details: …)` of a relay's error body, if it is one (fetch-text.ts `describeAnswer`). */
function parseError(text: string): string | null {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error;
    return typeof e?.code === 'string' ? describeAnswer(text) : null;
  } catch {
    return null;
  }
}

export interface RefundContext {
  relay: string;
  requestId: string;
  refund: Refund;
  sender: Address;
  byBridge: boolean;
  /** The question of its `LLMRequested` event (undefined: the oracle has none). */
  asked: (Asked & AskedBytes) | undefined;
  timeoutS: number;
  /** The coordinators its transcript, or its declined request packet, must be signed by (null: any). */
  pinned?: CoordinatorPin | null;
  /** Counts the coordinator of a transcript verified (audit.ts `countSigner`). */
  signedBy?: Record<string, number>;
  /** When the refund was mined (its block's timestamp, ms); absent: not known. */
  refundedAt?: number;
  /**
   * Whether an answer's `fulfill` could have been mined just before the refund (answer-fit.ts); absent:
   * it cannot be told here, and an `ANSWER_TOO_LARGE` refund is not re-derivable.
   */
  fit?: (answer: { output: string; verdictDigest: Hex; transcriptRoot: Hex }) => Promise<AnswerFit>;
}

/** Audit one refund (see the file's header). */
export async function auditRefund(c: RefundContext): Promise<RefundAudit> {
  const { requestId, refund, sender, byBridge, asked } = c;
  const base = { requestId, reason: refund.reason, txHash: refund.txHash, sender, byBridge };
  const held = await relayHeld(c.relay, requestId, c.timeoutS, c.pinned ?? null);
  if (held.kind === 'transcript' && c.signedBy) countSigner(c.signedBy, held.verified.report);
  const result = (outcome: 'holds' | 'not-re-derivable', failures: string[], notes: string[]): RefundAudit =>
    failures.length > 0 ? { ...base, outcome: 'fails', why: failures } : { ...base, outcome, why: notes };

  if (byBridge && refund.reason === 'NO_CONSENSUS') {
    const failures = noConsensusFailures(held, requestId, asked);
    const notes = [
      'its transcript holds, is the question asked on chain, and re-derives here to no consensus',
    ];
    return result('holds', failures, notes);
  }
  if (byBridge && refund.reason === ANSWER_TOO_LARGE) return tooLargeAudit(held, c, result);
  if (byBridge && refund.reason === 'DECLINED' && held.kind !== 'transcript') {
    return declinedAudit(held, c, result);
  }
  // Anyone's refund after the deadline, mined before the network's answer existed, withheld nothing. The
  // bridge's is judged whenever the answer came: it is the relay's, which should have waited for it.
  const undelivered = undeliveredAnswer(
    held,
    requestId,
    asked,
    refund.reason,
    byBridge ? undefined : c.refundedAt,
  );
  if (byBridge && INPUT_REASONS.has(refund.reason as keyof InputProblems)) {
    if (!asked) {
      const failures = [
        'the oracle has no LLMRequested event for this request number',
        ...undelivered.failures,
      ];
      return result('holds', failures, []);
    }
    const problems = inputProblems(asked)[refund.reason as keyof InputProblems];
    const failures =
      problems.length > 0
        ? undelivered.failures
        : [
            refund.reason === 'INVALID_INPUT'
              ? "refunded as INVALID_INPUT, but the question asked on chain is valid input: its bytes are UTF-8, and its models and params are within the protocol's limits"
              : `refunded as FRAME_OUT_OF_RANGE, but the quorum asked on chain, ${asked.quorum}, is within the frame's bounds`,
            ...undelivered.failures,
          ];
    return result('holds', failures, [...problems, ...undelivered.notes]);
  }
  const why = byBridge
    ? `${refund.reason} is not re-derivable from outside: ${NOT_REDERIVABLE[refund.reason] ?? 'not a reason the bridge gives for something that can be checked'}`
    : `${refund.reason} is not re-derivable: refunded by ${sender}, not the bridge; anyone may refund after the deadline, with any reason`;
  return result('not-re-derivable', undelivered.failures, [why, ...undelivered.notes]);
}

/**
 * A `DECLINED` refund by the bridge: the relay must show the nodes' signed declines of the question asked,
 * from at least its quorum of distinct nodes, naming every model it accepts. Whom the relay counted (its
 * seat policy) is its own record; that so many keys signed the prompt does not fit is checked here.
 */
async function declinedAudit(
  held: Exclude<RelayHeld, { kind: 'transcript' }>,
  c: RefundContext,
  result: (outcome: 'holds' | 'not-re-derivable', failures: string[], notes: string[]) => RefundAudit,
): Promise<RefundAudit> {
  const claim = 'refunded as DECLINED';
  if (held.kind === 'unreadable')
    return result('holds', [`${claim}; the relay's answer could not be read: ${held.why}`], []);
  if (held.kind !== 'declined') {
    return result('holds', [`${claim}, but the relay shows no declines for it (${held.why})`], []);
  }
  const check = await checkDeclines(held.request, held.declines, c.requestId);
  if (check.request === null) {
    return result('holds', [`${claim}; the request packet the relay serves: ${check.requestProblem}`], []);
  }
  const failures: string[] = [];
  const signer = (held.request as { from: string }).from;
  if (c.pinned && !c.pinned.ids.includes(signer)) {
    failures.push(
      `COORDINATOR_NOT_PINNED: the request packet the declines name is signed by ${signer}, not by ${c.pinned.by} (${c.pinned.ids.join(', ')})`,
    );
  }
  const asked = questionMismatches({ packets: [held.request] }, c.asked);
  failures.push(...asked.map((m) => `the request the declines name: ${m}`));
  for (const bad of check.invalid) failures.push(`a decline from ${bad.from}: ${bad.why}`);
  if (check.nodes < check.request.quorum) {
    failures.push(
      `${claim}, but ${check.nodes} node${check.nodes === 1 ? '' : 's'} signed a decline of it, fewer than its quorum of ${check.request.quorum}`,
    );
  }
  const unnamed = check.request.acceptedModels.filter((m) => !check.models.includes(m));
  if (unnamed.length > 0) failures.push(`${claim}, but no decline names its model ${unnamed.join(', ')}`);
  const closest = check.closest;
  const notes = [
    `${check.nodes} nodes signed that its prompt does not fit their model's context${closest ? ` (${closest.promptTokens} tokens of ${closest.model}, whose context holds ${closest.contextTokens})` : ''}; whom the relay counted toward its quorum is its own record`,
  ];
  return result('holds', failures, notes);
}

/**
 * An `ANSWER_TOO_LARGE` refund by the bridge: the relay's accepted verdict of the question asked, and its
 * winning answer's `fulfill` too large for the chain just before the refund.
 */
async function tooLargeAudit(
  held: RelayHeld,
  c: RefundContext,
  result: (outcome: 'holds' | 'not-re-derivable', failures: string[], notes: string[]) => RefundAudit,
): Promise<RefundAudit> {
  const claim = 'refunded as ANSWER_TOO_LARGE';
  if (held.kind === 'none' || held.kind === 'declined') {
    return result(
      'holds',
      [`${claim}, but the relay holds no verdict for it (${held.why}): no answer to be too large`],
      [],
    );
  }
  if (held.kind === 'unreadable')
    return result('holds', [`${claim}; its transcript could not be read: ${held.why}`], []);
  const { input, report } = held.verified;
  const check = report.check;
  const failures = reasonsOf(report).map((r) => `the relay's transcript for it: ${r}`);
  if (!check.ok || failures.length > 0) return result('holds', failures, []);
  if (check.requestId !== c.requestId) {
    return result('holds', [`the relay serves the transcript of another request, ${check.requestId}`], []);
  }
  const winner = check.verdict.winner;
  if (check.verdict.status !== 'accepted' || winner === null) {
    return result(
      'holds',
      [`${claim}, but its transcript re-derives to no consensus: there was no answer to deliver`],
      [],
    );
  }
  const other = questionMismatches(input.transcript, c.asked);
  if (other.length > 0)
    return result(
      'holds',
      [`${claim}, but the relay's verdict answers another question: ${other.join('; ')}`],
      [],
    );
  const bytes = new TextEncoder().encode(winner.output).length;
  if (!c.fit) {
    return result(
      'not-re-derivable',
      [],
      [`${claim}: whether its ${bytes}-byte answer fit cannot be told without the chain`],
    );
  }
  const fit = await c.fit({
    output: winner.output,
    verdictDigest: `0x${check.verdictDigest}`,
    transcriptRoot: `0x${check.root}`,
  });
  if (fit.kind === 'fits') {
    return result(
      'holds',
      [
        `${claim}, but its winning answer (${bytes} bytes, verdict digest ${check.verdictDigest}) fit: its fulfil needed ${fit.gas} gas of the ${fit.limit} a fulfil could use just before the refund (the block's gas limit, or EIP-7825's cap if lower): an answer that could be delivered was not`,
      ],
      [],
    );
  }
  if (fit.kind === 'too-large') {
    return result(
      'holds',
      [],
      [
        `its winning answer (${bytes} bytes) does not fit in the ${fit.limit} gas a fulfil could use just before the refund: ${fit.why}`,
      ],
    );
  }
  return result(
    'not-re-derivable',
    [],
    [`${claim}: whether its ${bytes}-byte answer fit could not be told: ${fit.why}`],
  );
}

/** Why a `NO_CONSENSUS` refund by the bridge does not hold (empty: it holds). */
function noConsensusFailures(held: RelayHeld, requestId: string, asked: Asked | undefined): string[] {
  if (held.kind === 'none' || held.kind === 'declined') {
    return [
      `refunded as NO_CONSENSUS, but the relay holds no verdict for it (${held.why}): nothing shows the network found no consensus`,
    ];
  }
  if (held.kind === 'unreadable')
    return [`refunded as NO_CONSENSUS; its transcript could not be read: ${held.why}`];
  const { input, report } = held.verified;
  const check = report.check;
  const failures = reasonsOf(report);
  if (check.ok) {
    if (check.verdict.status === 'accepted') {
      failures.unshift(
        `refunded as NO_CONSENSUS, but its verdict re-derived here is accepted (${check.verdict.accepted.length} of ${check.verdict.sealSize} sealed members agreed, ${check.verdict.required} needed; verdict digest ${check.verdictDigest}): the network answered and the asker was denied the answer`,
      );
    }
    if (check.requestId !== requestId)
      failures.unshift(`the transcript is of another request, ${check.requestId}`);
  }
  failures.push(...questionMismatches(input.transcript, asked));
  return failures;
}

/**
 * Whether the relay holds an accepted verdict of the very question refunded (an answer that existed and
 * was not delivered: a failure), and what it holds otherwise (notes).
 */
function undeliveredAnswer(
  held: RelayHeld,
  requestId: string,
  asked: Asked | undefined,
  reason: string,
  refundedAt?: number,
): { failures: string[]; notes: string[] } {
  if (held.kind === 'none' || held.kind === 'declined')
    return { failures: [], notes: [`the relay holds no verdict for it (${held.why})`] };
  if (held.kind === 'unreadable') {
    return {
      failures: [`whether the relay holds an answer for it could not be read: ${held.why}`],
      notes: [],
    };
  }
  const { input, report } = held.verified;
  const check = report.check;
  const failures = reasonsOf(report).map((r) => `the relay's transcript for it: ${r}`);
  if (!check.ok || failures.length > 0) return { failures, notes: [] };
  if (check.requestId !== requestId) {
    return {
      failures: [`the relay serves the transcript of another request, ${check.requestId}`],
      notes: [],
    };
  }
  if (check.verdict.status !== 'accepted') {
    return { failures: [], notes: ["the relay's transcript for it holds and re-derives to no consensus"] };
  }
  const other = questionMismatches(input.transcript, asked);
  if (other.length > 0) {
    return {
      failures: [],
      notes: [`the relay's accepted verdict under this number answers another question: ${other.join('; ')}`],
    };
  }
  const answeredAt = lastRevealAt(
    input.transcript,
    check.verdict.accepted.map((m) => m.nodeId),
  );
  if (refundedAt !== undefined && answeredAt !== undefined && answeredAt > refundedAt) {
    return {
      failures: [],
      notes: [
        `the relay's accepted verdict came after the refund (its last reveal signed at ${new Date(answeredAt).toISOString()}, the refund mined at ${new Date(refundedAt).toISOString()}): no answer existed to deliver then`,
      ],
    };
  }
  return {
    failures: [
      `refunded as ${reason}, but the relay holds an accepted verdict of this question (verdict digest ${check.verdictDigest}, re-derived here): an answer existed and was not delivered`,
    ],
    notes: [],
  };
}

/**
 * When an answer existed: the signed time of the last reveal of the members the verdict accepted (a
 * reveal it did not count, of a node outside the seal say, moves nothing), and no later than the seal's
 * time plus the reveal window, when every counted reveal was due. The transcript is one verified here,
 * so its packets are well-formed; undefined when it holds no such reveal.
 */
export function lastRevealAt(transcript: unknown, accepted: readonly string[]): number | undefined {
  type Loose = { type?: string; from?: string; body?: Record<string, unknown> };
  const packets = (transcript as { packets?: Loose[] } | null)?.packets ?? [];
  const members = new Set(accepted);
  let last: number | undefined;
  for (const p of packets) {
    const at = p?.type === 'reveal' && members.has(String(p.from)) ? p.body?.['createdAt'] : undefined;
    if (typeof at === 'number' && (last === undefined || at > last)) last = at;
  }
  const sealedAt = packets.find((p) => p?.type === 'seal')?.body?.['createdAt'];
  const frame = packets.find((p) => p?.type === 'request')?.body?.['frame'] as
    | { revealWindowMs?: unknown }
    | undefined;
  const window = frame?.revealWindowMs;
  if (last !== undefined && typeof sealedAt === 'number' && typeof window === 'number') {
    last = Math.min(last, sealedAt + window);
  }
  return last;
}
