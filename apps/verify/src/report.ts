import {
  canonicalJson,
  claimedReembeddings,
  type EmbeddingModelRef,
  fromHex,
  hamming,
  ReembeddingClaimSchema,
  type TranscriptCheck,
  type Verdict,
  verdictDigest,
  verifyTranscript,
} from '@synod/shared';
import { type AttestationCheck, type Attested, checkAttestations } from './attestations.ts';
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
  comparisons: Comparison[];
  /** The attestations given beside the transcript, checked; absent when none were given. */
  attestations?: AttestationCheck;
  /** With `--reembed`: the members' outputs embedded here, and the reveals whose bits disagree. */
  reembedded?: ReembedCheck;
  /**
   * Who vouched for the verdict (absent when the transcript does not hold): the coordinator that signed
   * the request and the seal, and each seal member with its outcome in the derived verdict (`agreed`,
   * or its rejection's reason).
   */
  who?: Who;
  /** The coordinators the request must be signed by (`--coordinator`, a relay's own), and whether it is. */
  pin?: CoordinatorPin & { ok: boolean };
}

/**
 * One value compared: what it is, the value given, the value derived, whether they match, and, where
 * "given X, derived Y" would not say it plainly, the sentence that does (`says`).
 */
export interface Comparison {
  what: string;
  given: string;
  derived: string | null;
  match: boolean;
  says?: { match: string; mismatch: string };
}

export interface Who {
  coordinator: string;
  members: { nodeId: string; outcome: string; winner: boolean }[];
}

/** Coordinator ids a request must be signed by, and what pinned them (`--coordinator`, a relay's /healthz). */
export interface CoordinatorPin {
  ids: readonly string[];
  by: string;
}

export interface ReembedCheck {
  embedder: string;
  /** Members' reveals embedded here. */
  reveals: number;
  noiseToleranceBits: number;
  /**
   * Reveals whose claimed bits are farther than the tolerance from this machine's (EMBEDDING_DISAGREES)
   * and that the verdict did not reject so itself.
   */
  disagree: { nodeId: string; revealId: string }[];
  /**
   * The verdict's re-embedding claims (a re-embedding coordinator's, `verdict.reembedded`) farther than
   * the tolerance from this machine's bits for the same reveal: the coordinator rejected a reveal
   * EMBEDDING_DISAGREES on bits that are not its output's (REEMBED_CLAIM_FALSE). `distance` is null when
   * this machine has no bits for that reveal (not a member's).
   */
  falseClaims: { nodeId: string; revealId: string; distance: number | null }[];
}

/**
 * The re-embedding claims of the verdict a source gives (its signed verdict packet's, else the verdict it
 * shows), as the recomputation's re-embedded bits: a re-embedding coordinator's verdict recomputes only
 * with them. None when the source gives none, or none that parse (the recomputation then differs from
 * the verdict claimed, and says so).
 */
function claimsOfSource(input: VerifyInput): Map<string, string> | undefined {
  const packet = input.verdictPacket as { body?: { verdict?: { reembedded?: unknown } } } | undefined;
  const shown = input.claimed.verdict as { reembedded?: unknown } | undefined;
  const raw = packet?.body?.verdict?.reembedded ?? shown?.reembedded ?? input.reembedded;
  if (raw === undefined) return undefined;
  const parsed = ReembeddingClaimSchema.array().max(256).safeParse(raw);
  return parsed.success ? claimedReembeddings({ reembedded: parsed.data }) : undefined;
}

/** How `--reembed` gets the embedder a frame pins (reembed.ts loads it; tests may pass their own). */
export interface ReembedOptions {
  load(ref: EmbeddingModelRef): Promise<{ embedBits: EmbedBits; close(): Promise<void> }>;
  noiseToleranceBits: number;
}

/**
 * Check the attestations a source gave beside the transcript (attestations.ts) into the report: one that
 * does not verify makes it fail, as a forged value would, and so does a seal member's attestation of
 * another verdict (a conflict).
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
    c.ok
      ? { verdictDigest: c.verdictDigest, root: c.root, members: (r.who?.members ?? []).map((m) => m.nodeId) }
      : null,
  );
  // A member's attestation of another verdict is said (ATTESTATION_CONFLICT, a warning) but fails
  // nothing: one dishonest or broken member of a seal could otherwise make every honest relay's
  // transcripts fail, and a relay that dropped a reveal would as easily drop that member's attestation.
  return { ...r, attestations, ok: r.ok && attestations.invalid.length === 0 };
}

/** Who vouched for a verdict that holds: its coordinator, and the seal's members with their outcomes. */
export function whoVouched(check: TranscriptCheck): Who | undefined {
  if (!check.ok) return undefined;
  const request = check.transcript.packets.find((p) => p.type === 'request');
  const seal = check.transcript.packets.find((p) => p.type === 'seal');
  if (request?.type !== 'request' || seal?.type !== 'seal')
    throw new Error('a transcript that holds has both');
  const v = check.verdict;
  const agreed = new Set(v.accepted.map((a) => a.nodeId));
  const outcome = (nodeId: string) =>
    agreed.has(nodeId)
      ? 'agreed'
      : (v.rejected.find(
          (x) => x.nodeId === nodeId && x.commitment !== null && x.reason !== 'DUPLICATE_REVEAL',
        )?.reason ?? 'NOT_REVEALED');
  return {
    coordinator: request.from,
    members: seal.body.members.map((m) => ({
      nodeId: m.nodeId,
      outcome: outcome(m.nodeId),
      winner: v.winner?.nodeId === m.nodeId,
    })),
  };
}

/**
 * Verify what a source gave, here: the transcript re-derived, compared with what the caller expects
 * and with what the source claims, and the attestations given beside it checked.
 */
export async function verifyInput(
  input: VerifyInput,
  expect: {
    expectDigest?: string;
    expectRoot?: string;
    expectRequestId?: string;
    /** The coordinators the request must be signed by. */
    coordinators?: CoordinatorPin;
  } = {},
  reembed?: ReembedOptions,
): Promise<VerifyReport> {
  const claims = claimsOfSource(input);
  const check = await verifyTranscript(input.transcript, claims === undefined ? {} : { reembedded: claims });
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
    // The verdict as this machine's embedder would have it: the reveals it finds not their output's,
    // beyond those the verdict rejected so itself (whose claims are checked below).
    const mine = await verifyTranscript(input.transcript, {
      reembedded: bits,
      noiseToleranceBits: reembed.noiseToleranceBits,
    });
    const rejectedSo = new Set(
      check.verdict.rejected.filter((r) => r.reason === 'EMBEDDING_DISAGREES').map((r) => r.nodeId),
    );
    reembedded = {
      embedder: ref.id,
      reveals: bits.size,
      noiseToleranceBits: reembed.noiseToleranceBits,
      disagree: mine.ok
        ? mine.verdict.rejected
            .filter((r) => r.reason === 'EMBEDDING_DISAGREES' && !rejectedSo.has(r.nodeId))
            .map((r) => ({ nodeId: r.nodeId, revealId: r.revealId ?? '' }))
        : [],
      falseClaims: (check.verdict.reembedded ?? []).flatMap((c) => {
        const own = bits.get(c.revealId);
        const distance = own === undefined ? null : hamming(fromHex(own), fromHex(c.bits));
        return distance === null || distance > reembed.noiseToleranceBits
          ? [{ nodeId: c.nodeId, revealId: c.revealId, distance }]
          : [];
      }),
    };
  }
  const compared = compare(check, {
    ...expect,
    claimed: input.claimed,
    signedVerdict: input.verdictPacket !== undefined,
  });
  if (input.verdictPacket !== undefined) {
    compared.comparisons.push(...(await verdictPacketComparisons(check, input.verdictPacket)));
    compared.ok = compared.ok && compared.comparisons.every((c) => c.match);
  }
  let report: VerifyReport = reembedded
    ? {
        ...compared,
        reembedded,
        ok: compared.ok && reembedded.disagree.length === 0 && reembedded.falseClaims.length === 0,
      }
    : compared;
  const who = whoVouched(check);
  if (who !== undefined) report = { ...report, who };
  const pin = expect.coordinators;
  if (pin !== undefined && who !== undefined) {
    const ok = pin.ids.includes(who.coordinator);
    report = { ...report, pin: { ...pin, ok }, ok: report.ok && ok };
  }
  return withAttestations(report, input.attestations);
}

/**
 * The coordinator's signed verdict packet a source gives (an archive line's, a relay answer's), checked against what is
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
    says: {
      match: `${what}'s signature verifies`,
      mismatch: `${what}'s signature does NOT verify under its signer's key: the packet was altered, or forged`,
    },
  });
  const request = check.ok ? check.transcript.packets.find((x) => x.type === 'request') : undefined;
  const add = (name: string, given: string, derived: string | null) =>
    out.push({ what: `${what}'s ${name}`, given, derived, match: given === derived });
  add('signer (the coordinator)', p.from, request?.from ?? null);
  add('request id', p.body.requestId, check.ok ? check.requestId : null);
  add('verdict digest', p.body.verdictDigest, check.ok ? check.verdictDigest : null);
  add('transcript root', p.body.transcriptRoot, check.ok ? check.root : null);
  out.push(verdictComparison(`${what}'s verdict`, p.body.verdict, check));
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

/**
 * A verdict object a source gives, compared with the derived one by its digest; when they differ, by
 * which of its fields do (`winner.output`, `accepted`…), as two digests say nothing of what changed.
 */
function verdictComparison(what: string, given: unknown, check: TranscriptCheck): Comparison {
  const digest = claimedVerdictDigest(given);
  const derived = check.ok ? check.verdictDigest : null;
  const c: Comparison = { what: `${what} (its digest)`, given: digest, derived, match: digest === derived };
  if (c.match || !check.ok || given === null || typeof given !== 'object' || Array.isArray(given)) return c;
  const fields = differingFields(
    given as Record<string, unknown>,
    check.verdict as unknown as Record<string, unknown>,
  );
  if (fields.length === 0) return c;
  return {
    ...c,
    says: {
      match: `${c.what} matches`,
      mismatch: `${what} does NOT match the derived one: it differs in ${fields.join(', ')} (its digest ${digest}, derived ${derived})`,
    },
  };
}

/** The fields in which two verdict objects differ, one level into `winner` and `centre`. */
function differingFields(a: Record<string, unknown>, b: Record<string, unknown>, prefix = ''): string[] {
  const out: string[] = [];
  for (const key of [...new Set([...Object.keys(b), ...Object.keys(a)])]) {
    const [x, y] = [a[key], b[key]];
    if (sameJson(x, y)) continue;
    const nested = prefix === '' && (key === 'winner' || key === 'centre');
    const objects = [x, y].every((v) => v !== null && typeof v === 'object' && !Array.isArray(v));
    if (nested && objects) {
      out.push(...differingFields(x as Record<string, unknown>, y as Record<string, unknown>, `${key}.`));
    } else out.push(`${prefix}${key}`);
  }
  return out;
}

/** Whether two values are the same JSON (canonical: member order does not count). */
function sameJson(x: unknown, y: unknown): boolean {
  try {
    return canonicalJson(x ?? null) === canonicalJson(y ?? null) && (x === undefined) === (y === undefined);
  } catch {
    return false;
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
    /** Whether the source gives a signed verdict packet too (an archive line's `verdict`). */
    signedVerdict?: boolean;
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
  // A status that names a verdict's outcome is compared with the derived one. Any other (an archived
  // request that expired after its seal has a transcript, and no verdict published) is compared only
  // when the source carries a verdict all the same: a request with a verdict has its outcome's status.
  const status = given.claimed.status;
  const carriesVerdict =
    given.signedVerdict === true ||
    given.claimed.verdict !== undefined ||
    given.claimed.verdictDigest !== undefined;
  if (status === 'verdict' || status === 'no-consensus' || (status !== undefined && carriesVerdict)) {
    add("the source's status", status, derived.status);
  }
  if (given.claimed.verdict !== undefined)
    comparisons.push(verdictComparison("the source's verdict", given.claimed.verdict, check));
  return { ok: check.ok && comparisons.every((c) => c.match), check, comparisons };
}

/** Why a report fails, one line each: the transcript's error, each mismatch, each bad attestation. */
export function reasonsOf(r: VerifyReport): string[] {
  const reasons: string[] = [];
  if (!r.check.ok) reasons.push(`does not hold: ${r.check.error.code}: ${r.check.error.message}`);
  const pinned = pinFailure(r);
  if (pinned !== null) reasons.push(pinned);
  for (const c of r.comparisons) {
    if (!c.match) {
      reasons.push(
        c.says?.mismatch ?? `${c.what} ${c.given} does not match the derived ${c.derived ?? '(none)'}`,
      );
    }
  }
  for (const bad of r.attestations?.invalid ?? []) {
    reasons.push(`an attestation from ${bad.from.slice(0, 16)}… does not hold: ${bad.why}`);
  }
  for (const d of r.reembedded?.disagree ?? []) {
    reasons.push(disagreement(d, r.reembedded as ReembedCheck));
  }
  for (const f of r.reembedded?.falseClaims ?? []) {
    reasons.push(falseClaim(f, r.reembedded as ReembedCheck));
  }
  return reasons;
}

/** `COORDINATOR_NOT_PINNED: …` when the request is signed by a key the pin does not name; else null. */
function pinFailure(r: VerifyReport): string | null {
  const p = r.pin;
  if (p === undefined || p.ok || r.who === undefined) return null;
  return `COORDINATOR_NOT_PINNED: the request and its seal are signed by ${r.who.coordinator}, not by ${p.by} (${p.ids.join(', ')})`;
}

/** What a report says without failing for it, one line each: seal members attesting another verdict. */
export function warningsOf(r: VerifyReport): string[] {
  return (r.attestations?.members?.conflicts ?? []).map((a) => conflict(a, r));
}

/** `ATTESTATION_CONFLICT: …` for a seal member's valid attestation of another verdict (a warning). */
function conflict(a: Attested, r: VerifyReport): string {
  const outcome = r.who?.members.find((m) => m.nodeId === a.nodeId)?.outcome ?? '?';
  const derived = r.check.ok ? r.check.verdictDigest : '(none)';
  return `ATTESTATION_CONFLICT (a warning): seal member ${a.nodeId} (${outcome} in the derived verdict) attests verdict digest ${a.verdictDigest}, not the derived ${derived}: it recomputed another verdict from what it held (a reveal dropped or altered on its way to it or to this transcript, or a member that signs what it likes)`;
}

const MAX_ISSUES = 20;
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** The report as lines for a terminal, what others wrote escaped (printable.ts). */
export function formatReport(r: VerifyReport): string {
  const lines: string[] = [];
  const c = r.check;
  if (!c.ok) {
    lines.push(`the transcript does NOT hold: ${c.error.code}: ${c.error.message}`);
    const issues =
      (c.error.details['issues'] as
        | { check?: string; message?: string; packetId?: string; index?: number }[]
        | undefined) ?? [];
    for (const i of issues.slice(0, MAX_ISSUES)) {
      // Which packet: its place in the transcript (`packets[3]`), and its id when it has one.
      const at = typeof i.index === 'number' ? `packets[${i.index}]` : undefined;
      lines.push(`  - ${[i.check, at, i.packetId?.slice(0, 16), i.message].filter(Boolean).join(': ')}`);
    }
    if (issues.length > MAX_ISSUES) lines.push(`  … and ${issues.length - MAX_ISSUES} more`);
    if (c.error.hint) lines.push(`  hint: ${c.error.hint}`);
  } else {
    const v = c.verdict;
    lines.push(`request ${c.requestId}: the transcript holds, verdict ${v.status}`);
    lines.push(`  verdict digest   ${c.verdictDigest}`);
    lines.push(`  transcript root  ${c.root}`);
    if (r.who) {
      lines.push(`  coordinator      ${r.who.coordinator} (signed the request and chose the seal)`);
    }
    if (r.pin) {
      lines.push(r.pin.ok ? `  coordinator      is ${r.pin.by}` : `  ${pinFailure(r)}`);
    }
    const reasons = new Map<string, number>();
    for (const x of v.rejected) reasons.set(x.reason, (reasons.get(x.reason) ?? 0) + 1);
    const rejected = [...reasons].map(([k, n]) => `${k} ${n}`).join(', ');
    lines.push(
      `  seal             ${plural(v.sealSize, 'member', 'members')}, ${v.required} needed to agree; ${v.accepted.length} agreed` +
        (v.rejected.length > 0 ? `; rejected: ${rejected}` : ''),
    );
    for (const m of r.who?.members ?? []) {
      lines.push(`  member           ${m.nodeId} ${m.outcome}${m.winner ? ', the winner' : ''}`);
    }
    if (v.winner) {
      lines.push(`  winner           node ${v.winner.nodeId.slice(0, 16)}…, model ${v.winner.model.id}`);
      lines.push(`  output digest    ${v.winner.outputDigest}`);
      const out = v.winner.output.replace(/\s+/g, ' ').trim();
      lines.push(`  output           ${out.length > 200 ? `${out.slice(0, 200)}…` : out}`);
    }
  }
  const a = r.attestations;
  if (a) lines.push(...attestationLines(a, r));
  const e = r.reembedded;
  if (e) {
    lines.push(
      `  re-embedded      ${e.reveals} member reveal${e.reveals === 1 ? '' : 's'} with ${e.embedder} here (tolerance ${e.noiseToleranceBits} bits): ${e.disagree.length} disagree`,
    );
    for (const d of e.disagree) lines.push(`  ${disagreement(d, e)}`);
    const claims = r.check.ok ? (r.check.verdict.reembedded ?? []).length : 0;
    if (claims > 0) {
      lines.push(
        `  re-embedded      the coordinator's ${plural(claims, 'claim', 'claims')} of a text's bits (EMBEDDING_DISAGREES): ${e.falseClaims.length} false`,
      );
    }
    for (const f of e.falseClaims) lines.push(`  ${falseClaim(f, e)}`);
  }
  for (const m of r.comparisons) {
    lines.push(
      m.match
        ? `  ${m.says?.match ?? `${m.what} matches`}`
        : `  ${m.says?.mismatch ?? `${m.what} does NOT match: given ${m.given}, derived ${m.derived ?? '(nothing: the transcript does not hold)'}`}`,
    );
  }
  return printableLines(lines);
}

/** The attestations by who signed them: the seal's members, then keys outside it (not counted). */
function attestationLines(a: AttestationCheck, r: VerifyReport): string[] {
  const lines: string[] = [];
  const m = a.members;
  if (m === null) {
    lines.push(
      `  attestations     ${plural(a.nodes, 'key', 'keys')} signed one (the transcript does not hold: no seal to tell its members by)`,
    );
  } else {
    lines.push(
      `  attestations     ${m.agree} of ${m.sealSize} seal members attest the derived verdict` +
        (m.conflicts.length > 0
          ? `; ${m.conflicts.length} attest ANOTHER verdict (ATTESTATION_CONFLICT)`
          : '') +
        (m.otherRoot.length > 0
          ? `; ${m.otherRoot.length} the derived verdict over another transcript root`
          : ''),
    );
    for (const x of m.conflicts) lines.push(`  ${conflict(x, r)}`);
  }
  const o = a.outsiders;
  if (o !== null && o.signed > 0) {
    lines.push(
      `  attestations     ${plural(o.signed, 'key', 'keys')} outside the seal also signed one, not counted (keys cost nothing: they prove nothing about the seal): ${o.agree} of the derived verdict, ${o.other} of another`,
    );
  }
  for (const bad of a.invalid)
    lines.push(`  an attestation from ${bad.from.slice(0, 16)}… does NOT hold: ${bad.why}`);
  return lines;
}

function disagreement(d: ReembedCheck['disagree'][number], e: ReembedCheck): string {
  return `the bits node ${d.nodeId.slice(0, 16)}… revealed (reveal ${d.revealId.slice(0, 16)}…) are NOT its output's: more than ${e.noiseToleranceBits} bits from ${e.embedder} here (EMBEDDING_DISAGREES)`;
}

function falseClaim(f: ReembedCheck['falseClaims'][number], e: ReembedCheck): string {
  const far = f.distance === null ? 'not a member reveal here' : `${f.distance} bits from ${e.embedder} here`;
  return `REEMBED_CLAIM_FALSE: the coordinator rejected node ${f.nodeId.slice(0, 16)}…'s reveal ${f.revealId.slice(0, 16)}… on bits that are NOT its output's (${far}, tolerance ${e.noiseToleranceBits})`;
}

/** The report as one JSON value: what was derived, who vouched, what was compared, and why it fails. */
export function reportJson(r: VerifyReport): Record<string, unknown> {
  const c = r.check;
  return {
    ok: r.ok,
    ...(c.ok
      ? { requestId: c.requestId, verdictDigest: c.verdictDigest, transcriptRoot: c.root, verdict: c.verdict }
      : { error: c.error.toJSON() }),
    ...(r.who ? { coordinator: r.who.coordinator, sealMembers: r.who.members } : {}),
    ...(r.pin ? { pin: r.pin } : {}),
    comparisons: r.comparisons,
    ...(r.attestations ? { attestations: r.attestations } : {}),
    ...(r.reembedded ? { reembedded: r.reembedded } : {}),
    reasons: reasonsOf(r),
    warnings: warningsOf(r),
  };
}
