import { type TranscriptCheck, verifyTranscript } from '@synod/shared';
import { type AttestationCheck, checkAttestations } from './attestations.ts';
import type { VerifyInput } from './verify-input.ts';

/** The local result, and how it compares with what was expected or claimed. */
export interface VerifyReport {
  /** True when the transcript holds and every expected or claimed value matches the one derived. */
  ok: boolean;
  check: TranscriptCheck;
  /** Each comparison made: what was compared, the value given, the value derived, and whether they match. */
  comparisons: { what: string; given: string; derived: string | null; match: boolean }[];
  /** The attestations given beside the transcript, checked; absent when none were given. */
  attestations?: AttestationCheck;
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
  expect: { expectDigest?: string; expectRoot?: string } = {},
): Promise<VerifyReport> {
  const check = await verifyTranscript(input.transcript);
  return withAttestations(compare(check, { ...expect, claimed: input.claimed }), input.attestations);
}

export function compare(
  check: TranscriptCheck,
  given: { expectDigest?: string; expectRoot?: string; claimed: { verdictDigest?: string; root?: string } },
): VerifyReport {
  const derived = check.ok ? { digest: check.verdictDigest, root: check.root } : { digest: null, root: null };
  const comparisons: VerifyReport['comparisons'] = [];
  const add = (what: string, value: string | undefined, d: string | null) => {
    if (value !== undefined) comparisons.push({ what, given: value, derived: d, match: value === d });
  };
  add('--expect-digest', given.expectDigest, derived.digest);
  add('--expect-root', given.expectRoot, derived.root);
  add("the source's verdict digest", given.claimed.verdictDigest, derived.digest);
  add("the source's transcript root", given.claimed.root, derived.root);
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
  return reasons;
}

const MAX_ISSUES = 20;

/** The report as lines for a terminal. */
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
  for (const m of r.comparisons) {
    lines.push(
      m.match
        ? `  ${m.what} matches`
        : `  ${m.what} does NOT match: given ${m.given}, derived ${m.derived ?? '(nothing: the transcript does not hold)'}`,
    );
  }
  return lines.join('\n');
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
  };
}
