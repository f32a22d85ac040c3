import {
  type EmbeddingModelRef,
  type TranscriptCheck,
  type Verdict,
  verdictDigest,
  verifyTranscript,
} from '@synod/shared';
import { type AttestationCheck, checkAttestations } from './attestations.ts';
import { printableLines } from './printable.ts';
import { type EmbedBits, reembedReveals } from './reembed.ts';
import { packetOf, signatureHolds } from './signed-packets.ts';
import { shownValue, type VerifyInput } from './verify-input.ts';

/** The local result, and how it compares with what was expected or claimed. */
export interface VerifyReport {
  /** True when the transcript holds and every expected or claimed value matches the one derived. */
  ok: boolean;
  check: TranscriptCheck;
  /** Each comparison made: what was compared, the value given, the value derived, and whether they match. */
  comparisons: { what: string; given: string; derived: string | null; match: boolean }[];
  /** The attestations given beside the transcript, checked; absent when none were given. */
  attestations?: AttestationCheck;
  /** With `--reembed`: the members' outputs embedded here, and the reveals whose bits disagree. */
  reembedded?: ReembedCheck;
}

export interface ReembedCheck {
  embedder: string;
  /** Members' reveals embedded here. */
  reveals: number;
  noiseToleranceBits: number;
  /** Reveals whose claimed bits are farther than the tolerance from this machine's (EMBEDDING_DISAGREES). */
  disagree: { nodeId: string; revealId: string }[];
}

/** How `--reembed` gets the embedder a frame pins (reembed.ts loads it; tests may pass their own). */
export interface ReembedOptions {
  load(ref: EmbeddingModelRef): Promise<{ embedBits: EmbedBits; close(): Promise<void> }>;
  noiseToleranceBits: number;
}

/**
 * Check the attestations a source gave beside the transcript (attestations.ts) into the report: one that
 * does not verify makes it fail, as a forged value would.
 */
export async function withAttestations(
  r: VerifyReport,
  given: readonly unknown[] | undefined,
): Promise<VerifyReport> {
  if (given === undefined) return r;
  const c = r.check;
  const requestId = c.ok ? c.requestId : '';
  const attestations = await checkAttestations(
    given,
    requestId,
    c.ok ? { verdictDigest: c.verdictDigest, root: c.root } : null,
  );
  return { ...r, attestations, ok: r.ok && attestations.invalid.length === 0 };
}

/**
 * Verify what a source gave, here: the transcript re-derived, compared with what the caller expects
 * and with what the source claims, and the attestations given beside it checked.
 */
export async function verifyInput(
  input: VerifyInput,
  expect: { expectDigest?: string; expectRoot?: string; expectRequestId?: string } = {},
  reembed?: ReembedOptions,
): Promise<VerifyReport> {
  let check = await verifyTranscript(input.transcript);
  let reembedded: ReembedCheck | undefined;
  if (reembed !== undefined && check.ok) {
    const request = check.transcript.packets.find((p) => p.type === 'request');
    if (request?.type !== 'request') throw new Error('a transcript that holds has a request');
    const ref = request.body.frame.embeddingModel;
    const embedder = await reembed.load(ref);
    let bits: Map<string, string>;
    try {
      bits = await reembedReveals(check.transcript, embedder.embedBits);
    } finally {
      await embedder.close();
    }
    check = await verifyTranscript(input.transcript, {
      reembedded: bits,
      noiseToleranceBits: reembed.noiseToleranceBits,
    });
    reembedded = {
      embedder: ref.id,
      reveals: bits.size,
      noiseToleranceBits: reembed.noiseToleranceBits,
      disagree: check.ok
        ? check.verdict.rejected
            .filter((r) => r.reason === 'EMBEDDING_DISAGREES')
            .map((r) => ({ nodeId: r.nodeId, revealId: r.revealId ?? '' }))
        : [],
    };
  }
  const compared = compare(check, { ...expect, claimed: input.claimed });
  if (input.verdictPacket !== undefined) {
    compared.comparisons.push(...(await verdictPacketComparisons(check, input.verdictPacket)));
    compared.ok = compared.ok && compared.comparisons.every((c) => c.match);
  }
  const report = reembedded
    ? { ...compared, reembedded, ok: compared.ok && reembedded.disagree.length === 0 }
    : compared;
  return withAttestations(report, input.attestations);
}

/**
 * The coordinator's signed verdict packet a source gives (an archive line's), checked against what is
 * derived: a verdict packet whose signature holds, signed by the key that signed the request (its
 * coordinator), naming the request, the derived verdict, its digest and the transcript's root.
 */
async function verdictPacketComparisons(
  check: TranscriptCheck,
  raw: unknown,
): Promise<VerifyReport['comparisons']> {
  const what = "the coordinator's signed verdict";
  const read = packetOf(raw, 'verdict', 'a verdict');
  if ('why' in read) return [{ what, given: read.why, derived: 'a verdict packet', match: false }];
  const p = read.packet;
  const out: VerifyReport['comparisons'] = [];
  const holds = await signatureHolds(p);
  out.push({
    what: `${what}'s signature`,
    given: holds ? 'verifies' : 'does not verify',
    derived: 'verifies',
    match: holds,
  });
  const request = check.ok ? check.transcript.packets.find((x) => x.type === 'request') : undefined;
  const add = (name: string, given: string, derived: string | null) =>
    out.push({ what: `${what}'s ${name}`, given, derived, match: given === derived });
  add('signer (the coordinator)', p.from, request?.from ?? null);
  add('request id', p.body.requestId, check.ok ? check.requestId : null);
  add('verdict digest', p.body.verdictDigest, check.ok ? check.verdictDigest : null);
  add('transcript root', p.body.transcriptRoot, check.ok ? check.root : null);
  add('verdict (its digest)', verdictDigest(p.body.verdict), check.ok ? check.verdictDigest : null);
  return out;
}

/** The digest of a verdict object a source gives, or what it is when it is not one. */
function claimedVerdictDigest(v: unknown): string {
  try {
    return verdictDigest(v as Verdict);
  } catch {
    return `not a verdict: ${shownValue(v).slice(0, 80)}`;
  }
}

/** A request's status as a relay's history names its verdict's outcome. */
function statusOf(v: Verdict): string {
  return v.status === 'accepted' ? 'verdict' : 'no-consensus';
}

export function compare(
  check: TranscriptCheck,
  given: {
    expectDigest?: string;
    expectRoot?: string;
    /** The request the source was asked for (a relay URL's `/v1/verify/<id>`). */
    expectRequestId?: string;
    claimed: VerifyInput['claimed'];
  },
): VerifyReport {
  const derived = check.ok
    ? {
        digest: check.verdictDigest,
        root: check.root,
        requestId: check.requestId,
        status: statusOf(check.verdict),
      }
    : { digest: null, root: null, requestId: null, status: null };
  const comparisons: VerifyReport['comparisons'] = [];
  const add = (what: string, value: string | undefined, d: string | null) => {
    if (value !== undefined) comparisons.push({ what, given: value, derived: d, match: value === d });
  };
  add('--expect-digest', given.expectDigest, derived.digest);
  add('--expect-root', given.expectRoot, derived.root);
  // A genuine transcript of another request answers another question: the request is compared too.
  add('the request asked for', given.expectRequestId, derived.requestId);
  add("the source's verdict digest", given.claimed.verdictDigest, derived.digest);
  add("the source's transcript root", given.claimed.root, derived.root);
  add("the source's request id", given.claimed.requestId, derived.requestId);
  // Only a status that names a verdict's outcome is one to compare: an archived request that expired
  // after its seal has a transcript, and no verdict published.
  const status = given.claimed.status;
  if (status === 'verdict' || status === 'no-consensus') add("the source's status", status, derived.status);
  if (given.claimed.verdict !== undefined)
    add("the source's verdict (its digest)", claimedVerdictDigest(given.claimed.verdict), derived.digest);
  return { ok: check.ok && comparisons.every((c) => c.match), check, comparisons };
}

/** Why a report fails, one line each: the transcript's error, each mismatch, each bad attestation. */
export function reasonsOf(r: VerifyReport): string[] {
  const reasons: string[] = [];
  if (!r.check.ok) reasons.push(`does not hold: ${r.check.error.code}: ${r.check.error.message}`);
  for (const c of r.comparisons) {
    if (!c.match) reasons.push(`${c.what} ${c.given} does not match the derived ${c.derived ?? '(none)'}`);
  }
  for (const bad of r.attestations?.invalid ?? []) {
    reasons.push(`an attestation from ${bad.from.slice(0, 16)}… does not hold: ${bad.why}`);
  }
  for (const d of r.reembedded?.disagree ?? []) {
    reasons.push(disagreement(d, r.reembedded as ReembedCheck));
  }
  return reasons;
}

const MAX_ISSUES = 20;

/** The report as lines for a terminal, what others wrote escaped (printable.ts). */
export function formatReport(r: VerifyReport): string {
  const lines: string[] = [];
  const c = r.check;
  if (!c.ok) {
    lines.push(`the transcript does NOT hold: ${c.error.code}: ${c.error.message}`);
    const issues =
      (c.error.details['issues'] as { check?: string; message?: string; packetId?: string }[]) ?? [];
    for (const i of issues.slice(0, MAX_ISSUES)) {
      lines.push(`  - ${[i.check, i.packetId?.slice(0, 16), i.message].filter(Boolean).join(': ')}`);
    }
    if (issues.length > MAX_ISSUES) lines.push(`  … and ${issues.length - MAX_ISSUES} more`);
    if (c.error.hint) lines.push(`  hint: ${c.error.hint}`);
  } else {
    const v = c.verdict;
    lines.push(`request ${c.requestId}: the transcript holds, verdict ${v.status}`);
    lines.push(`  verdict digest   ${c.verdictDigest}`);
    lines.push(`  transcript root  ${c.root}`);
    const reasons = new Map<string, number>();
    for (const x of v.rejected) reasons.set(x.reason, (reasons.get(x.reason) ?? 0) + 1);
    const rejected = [...reasons].map(([k, n]) => `${k} ${n}`).join(', ');
    lines.push(
      `  seal             ${v.sealSize} members, ${v.required} needed to agree; ${v.accepted.length} agreed` +
        (v.rejected.length > 0 ? `; rejected: ${rejected}` : ''),
    );
    if (v.winner) {
      lines.push(`  winner           node ${v.winner.nodeId.slice(0, 16)}…, model ${v.winner.model.id}`);
      lines.push(`  output digest    ${v.winner.outputDigest}`);
      const out = v.winner.output.replace(/\s+/g, ' ').trim();
      lines.push(`  output           ${out.length > 200 ? `${out.slice(0, 200)}…` : out}`);
    }
  }
  const a = r.attestations;
  if (a) {
    lines.push(
      `  attestations     ${a.nodes} node${a.nodes === 1 ? '' : 's'} signed one, ${a.agree} of the derived verdict`,
    );
    for (const bad of a.invalid)
      lines.push(`  an attestation from ${bad.from.slice(0, 16)}… does NOT hold: ${bad.why}`);
  }
  const e = r.reembedded;
  if (e) {
    lines.push(
      `  re-embedded      ${e.reveals} member reveal${e.reveals === 1 ? '' : 's'} with ${e.embedder} here (tolerance ${e.noiseToleranceBits} bits): ${e.disagree.length} disagree`,
    );
    for (const d of e.disagree) lines.push(`  ${disagreement(d, e)}`);
  }
  for (const m of r.comparisons) {
    lines.push(
      m.match
        ? `  ${m.what} matches`
        : `  ${m.what} does NOT match: given ${m.given}, derived ${m.derived ?? '(nothing: the transcript does not hold)'}`,
    );
  }
  return printableLines(lines);
}

function disagreement(d: ReembedCheck['disagree'][number], e: ReembedCheck): string {
  return `the bits node ${d.nodeId.slice(0, 16)}… revealed (reveal ${d.revealId.slice(0, 16)}…) are NOT its output's: more than ${e.noiseToleranceBits} bits from ${e.embedder} here (EMBEDDING_DISAGREES)`;
}

/** The report as one JSON value. */
export function reportJson(r: VerifyReport): Record<string, unknown> {
  const c = r.check;
  return {
    ok: r.ok,
    ...(c.ok
      ? { requestId: c.requestId, verdictDigest: c.verdictDigest, transcriptRoot: c.root, verdict: c.verdict }
      : { error: c.error.toJSON() }),
    comparisons: r.comparisons,
    ...(r.attestations ? { attestations: r.attestations } : {}),
    ...(r.reembedded ? { reembedded: r.reembedded } : {}),
  };
}
