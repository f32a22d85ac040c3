/**
 * `synod-verify --relay URL`: audit a relay, trusting nothing it says. Walks its public history
 * (`GET /v1/history`, every request with a verdict or a no-consensus outcome, the two listings merged
 * newest first), fetches each transcript (`GET /v1/verify/<id>`) and re-derives the verdict here
 * (`verifyTranscript`), comparing it with what the relay published twice: in the history listing and
 * beside the transcript.
 */
import { describeAnswer, fetchText } from './fetch-text.ts';
import { printableLines } from './printable.ts';
import { type CoordinatorPin, reasonsOf, type VerifyReport, verifyInput, warningsOf } from './report.ts';
import {
  isRateLimited,
  parseUniqueJson,
  readVerifyInput,
  shownValue,
  type VerifyInput,
  VerifyInputError,
} from './verify-input.ts';

export interface AuditOptions {
  /** The relay's base URL (`http://127.0.0.1:8787`). */
  relay: string;
  /** Most requests to check. */
  limit: number;
  /** Only requests that accepted this model, or that this node took part in (the history's filters). */
  model?: string;
  node?: string;
  timeoutS: number;
  /**
   * The coordinators whose requests the relay may serve (`--coordinator`); absent: the one the relay
   * publishes (`GET /healthz`).
   */
  coordinators?: readonly string[];
  /** Told after each request is checked (progress on a terminal). */
  onChecked?: (done: number) => void;
}

/** One audited request that does not hold, or whose published values differ from the derived ones. */
export interface AuditFailure {
  requestId: string;
  /** Why: the transcript's error code and message, or which published value does not match. */
  reasons: string[];
}

export interface AuditReport {
  relay: string;
  checked: number;
  held: number;
  failures: AuditFailure[];
  /** What held with something said beside it (a seal member attesting another verdict), by request. */
  warnings: AuditFailure[];
  /**
   * The coordinator the relay publishes (`GET /healthz`; null: none, or not read; absent: no relay was
   * asked, as for an archive) and the ids every transcript's request must be signed by (null: none
   * pinned, as a chain audit without `--coordinator`).
   */
  coordinator: { published?: string | null; pinned: CoordinatorPin | null };
  /** The keys that signed the requests audited (their coordinators), with how many each. */
  signedBy: Record<string, number>;
  /** What is wrong with the relay itself (it publishes another coordinator than the pinned one). */
  problems: string[];
  /**
   * Requests listed but not checked: the relay rate-limited their transcript past the retries
   * (fetch-text.ts `RATE_LIMIT`). Neither held nor failed.
   */
  unchecked: { requestId: string; why: string }[];
  /** Why the audit stopped before it was done (the history rate-limited), or null. */
  incomplete: string | null;
  /** What `--limit` left out (null: it cut nothing short). */
  limited: string | null;
  /** Every request audited, in the order audited (newest first). */
  items: AuditedItem[];
  /** Why nothing was audited, when nothing was (null otherwise): exit code 3, as an incomplete audit. */
  nothing: string | null;
}

/** The terminal outcomes whose transcripts carry a verdict to re-derive. */
const AUDITED_STATUSES = ['verdict', 'no-consensus'] as const;
const PAGE = 100;

interface HistoryItem {
  requestId: string;
  /** When the request was made (ms): the order the two outcomes' listings are merged in. */
  createdAt: number;
  verdictDigest: string | null;
  transcriptRoot: string | null;
  /** As listed (`verdict` or `no-consensus` here): compared with the derived verdict's outcome. */
  status?: unknown;
  /** As listed: compared with the request packet's signer. */
  coordinator?: unknown;
  winnerNodeId?: unknown;
  winnerModelId?: unknown;
}

interface HistoryPage {
  items: HistoryItem[];
  nextCursor: string | null;
}

/** Audit a relay (see the file's header). A relay that cannot be read is a `VerifyInputError`. */
export async function auditRelay(o: AuditOptions): Promise<AuditReport> {
  const report = await walkRelay(o);
  if (isEmpty(report)) {
    const filters = [
      o.model === undefined ? null : `--model ${o.model}`,
      o.node === undefined ? null : `--node ${o.node}`,
    ].filter((x) => x !== null);
    report.nothing = `the history lists no request with a verdict or a no-consensus outcome${filters.length > 0 ? ` (with ${filters.join(', ')})` : ''}`;
  }
  return report;
}

/** An audit of `relay` before anything was audited (the counts at 0, every list empty). */
export function emptyAudit(relay: string, coordinator: AuditReport['coordinator']): AuditReport {
  return {
    relay,
    checked: 0,
    held: 0,
    failures: [],
    warnings: [],
    coordinator,
    signedBy: {},
    problems: [],
    unchecked: [],
    incomplete: null,
    limited: null,
    items: [],
    nothing: null,
  };
}

/** Whether an audit looked at nothing at all (and found nothing wrong with the relay itself). */
export function isEmpty(r: AuditReport): boolean {
  return r.checked === 0 && r.unchecked.length === 0 && r.incomplete === null && r.problems.length === 0;
}

async function walkRelay(o: AuditOptions): Promise<AuditReport> {
  const base = o.relay.replace(/\/+$/, '');
  const published = await publishedCoordinator(base, o.timeoutS);
  // Pinned only when asked: relays over one database serve each other's requests (and a relay's key may
  // have been replaced), so a request signed by another key than the relay's own is said (a warning),
  // not failed; --coordinator names the keys to hold every request to.
  const pinned: CoordinatorPin | null =
    o.coordinators !== undefined
      ? { ids: o.coordinators, by: 'the coordinator pinned by --coordinator' }
      : null;
  const report = emptyAudit(base, { published, pinned });
  if (pinned !== null && published !== null && !pinned.ids.includes(published)) {
    // A relay that says it is another coordinator than the one trusted: nothing it serves is that one's.
    report.problems.push(
      `COORDINATOR_NOT_PINNED: the relay publishes coordinator ${published} (its /healthz), not one pinned by --coordinator (${pinned.ids.join(', ')}): not audited further`,
    );
    return report;
  }
  // Both outcomes' listings, newest first each, merged by creation time: --limit N audits the N newest
  // outcomes whatever their status, and no-consensus ones are not left behind every verdict.
  const streams = AUDITED_STATUSES.map((status) => ({
    status,
    buffer: [] as HistoryItem[],
    cursor: null as string | null,
    started: false,
    cursors: new Set<string>(),
  }));
  const seen = new Set<string>();
  for (;;) {
    const taken = report.checked + report.unchecked.length;
    for (const st of streams) {
      if (st.buffer.length > 0 || (st.started && st.cursor === null) || taken >= o.limit) continue;
      const q = new URLSearchParams({ status: st.status, limit: String(Math.min(PAGE, o.limit - taken)) });
      if (o.model !== undefined) q.set('model', o.model);
      if (o.node !== undefined) q.set('node', o.node);
      if (st.cursor !== null) q.set('cursor', st.cursor);
      let page: HistoryPage;
      try {
        page = parsePage(await getText(`${base}/v1/history?${q}`, o.timeoutS, 'history'));
      } catch (e) {
        // Rate-limited past the retries: what was audited stands, and the audit says where it stopped.
        if (!isRateLimited(e)) throw e;
        report.incomplete = `the history could not be read further: ${(e as Error).message}`;
        return report;
      }
      st.started = true;
      st.buffer.push(...page.items);
      // A page that is empty, or brings nothing not listed already, yet names a next one, or a cursor
      // named before, would be read forever (a relay repeating itself): the listing ends there.
      const fresh = page.items.some((i) => !seen.has(i.requestId));
      const next = page.nextCursor;
      st.cursor = fresh && next !== null && !st.cursors.has(next) ? next : null;
      if (next !== null) st.cursors.add(next);
    }
    if (taken >= o.limit) {
      if (streams.some((st) => st.buffer.length > 0 || st.cursor !== null)) {
        report.limited = `stopped at --limit ${o.limit}: older requests in the history were not audited`;
      }
      return report;
    }
    const next = streams
      .filter((st) => st.buffer.length > 0)
      .sort((a, b) => newerFirst(a.buffer[0] as HistoryItem, b.buffer[0] as HistoryItem))[0];
    if (next === undefined) return report;
    const item = next.buffer.shift() as HistoryItem;
    // A request listed twice (under both statuses, or on two pages) is audited once.
    if (seen.has(item.requestId)) continue;
    seen.add(item.requestId);
    let audited: Awaited<ReturnType<typeof auditOne>>;
    try {
      audited = await auditOne(base, item, o.timeoutS, pinned, report.signedBy);
    } catch (e) {
      if (!isRateLimited(e)) throw e;
      report.unchecked.push({ requestId: item.requestId, why: (e as Error).message });
      continue;
    }
    addAudited(report, item.requestId, audited.report, audited.reasons);
    const signer = audited.report?.who?.coordinator;
    if (pinned === null && signer !== undefined && signer !== published) {
      const said = `signed by ${signer}, not by the relay's own coordinator (${published ?? 'none published'}, its /healthz): a relay over the same database, a key the relay had before, or a key it is not: --coordinator pins the keys you trust`;
      const w = report.warnings.find((x) => x.requestId === item.requestId);
      if (w) w.reasons.push(said);
      else report.warnings.push({ requestId: item.requestId, reasons: [said] });
    }
    o.onChecked?.(report.checked);
  }
}

/** History items newest first: by creation time, then request id, both descending (as a relay lists). */
function newerFirst(a: HistoryItem, b: HistoryItem): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.requestId < b.requestId ? 1 : a.requestId > b.requestId ? -1 : 0;
}

/**
 * The coordinator a relay publishes (`GET /healthz`'s `coordinator`, answered 200, or 503 while it is
 * not healthy), or null when it names none. A relay that cannot be read is a `VerifyInputError`.
 */
export async function publishedCoordinator(base: string, timeoutS: number): Promise<string | null> {
  const r = await fetchText(`${base}/healthz`, timeoutS, 'health and coordinator');
  if (r.status !== 200 && r.status !== 503) {
    throw new VerifyInputError(`${base}/healthz answered ${r.status}: ${describeAnswer(r.text)}`);
  }
  const id = (parseUniqueJson(r.text, `${base}/healthz`) as { coordinator?: unknown } | null)?.coordinator;
  return typeof id === 'string' && /^[0-9a-f]{64}$/.test(id) ? id : null;
}

/** Count a verified request's coordinator (the key that signed it) into `signedBy`. */
export function countSigner(signedBy: Record<string, number>, r: VerifyReport): void {
  if (r.who) signedBy[r.who.coordinator] = (signedBy[r.who.coordinator] ?? 0) + 1;
}

async function auditOne(
  base: string,
  item: HistoryItem,
  timeoutS: number,
  pinned: CoordinatorPin | null,
  signedBy: Record<string, number>,
): Promise<{ reasons: string[]; report: VerifyReport | null }> {
  let verified: Verified;
  try {
    verified = await fetchAndVerify(
      `${base}/v1/verify/${encodeURIComponent(item.requestId)}`,
      timeoutS,
      pinned,
    );
  } catch (e) {
    // A transcript the relay would not serve fails; one it rate-limited is not checked (the caller's).
    if (e instanceof VerifyInputError && !isRateLimited(e)) return { reasons: [e.message], report: null };
    throw e;
  }
  const { report } = verified;
  countSigner(signedBy, report);
  const check = report.check;
  const derived = check.ok
    ? {
        status: check.verdict.status === 'accepted' ? 'verdict' : 'no-consensus',
        winnerNodeId: check.verdict.winner?.nodeId ?? null,
        winnerModelId: check.verdict.winner?.model.id ?? null,
      }
    : null;
  // What the history listing published must match too: the digest and root, the outcome and the winner.
  // (A digest or root the listing leaves out is no claim; a winner it leaves out of an accepted verdict is.)
  for (const [what, given, d] of [
    ["the history's verdict digest", item.verdictDigest ?? undefined, check.ok ? check.verdictDigest : null],
    ["the history's transcript root", item.transcriptRoot ?? undefined, check.ok ? check.root : null],
    ["the history's status", item.status, derived?.status ?? null],
    // The coordinator the history names must be the key that signed the request it serves.
    ["the history's coordinator", item.coordinator, report.who?.coordinator ?? null],
    ["the history's winner", item.winnerNodeId, derived?.winnerNodeId ?? null],
    ["the history's winning model", item.winnerModelId, derived?.winnerModelId ?? null],
  ] as const) {
    if (given === undefined || (given === null && d === null)) continue;
    const text = shownValue(given);
    report.comparisons.push({ what, given: text, derived: d, match: given === d });
  }
  const reasons = reasonsOf(report);
  // A transcript about another request answers nothing about this one.
  if (check.ok && check.requestId !== item.requestId) {
    reasons.unshift(`the transcript is of another request, ${check.requestId}`);
  }
  return { reasons, report };
}

/** A request audited, as `--json` lists it: what was derived here (null: nothing) and the outcome. */
export interface AuditedItem {
  requestId: string;
  outcome: 'holds' | 'fails';
  /** The key that signed the request (its coordinator), when the transcript holds. */
  coordinator: string | null;
  /** The derived verdict's status, digest and the transcript's root (null when it does not hold). */
  verdictStatus: 'accepted' | 'no-consensus' | null;
  verdictDigest: string | null;
  transcriptRoot: string | null;
}

/** Count a request's audit into the report (its item, and its failure when it has reasons). */
export function addAudited(
  r: AuditReport,
  requestId: string,
  verified: VerifyReport | null,
  reasons: readonly string[],
): void {
  const c = verified?.check;
  r.checked++;
  r.items.push({
    requestId,
    outcome: reasons.length > 0 ? 'fails' : 'holds',
    coordinator: verified?.who?.coordinator ?? null,
    verdictStatus: c?.ok ? c.verdict.status : null,
    verdictDigest: c?.ok ? c.verdictDigest : null,
    transcriptRoot: c?.ok ? c.root : null,
  });
  if (reasons.length > 0) r.failures.push({ requestId, reasons: [...reasons] });
  else r.held++;
  const warnings = verified ? warningsOf(verified) : [];
  if (warnings.length > 0) r.warnings.push({ requestId, reasons: warnings });
}

/** A transcript fetched from a relay and verified here, with what the relay said beside it checked. */
export interface Verified {
  input: VerifyInput;
  report: VerifyReport;
}

/**
 * Fetch a relay's `/v1/verify/<id>` answer and verify it here: the transcript re-derived, the relay's
 * claims compared, its attestations checked. A relay that cannot be read, or an answer holding no
 * transcript, is a `VerifyInputError`.
 */
export async function fetchAndVerify(
  url: string,
  timeoutS: number,
  coordinators: CoordinatorPin | null = null,
): Promise<Verified> {
  const input = readVerifyInput(await getText(url, timeoutS, 'transcript'), `the transcript at ${url}`);
  return { input, report: await verifyInput(input, coordinators === null ? {} : { coordinators }) };
}

/** The text at `url`; any status but a success (or a 422 with a transcript that does not hold) throws. */
export async function getText(url: string, timeoutS: number, what: string): Promise<string> {
  const r = await fetchText(url, timeoutS, what);
  // A relay answers 422 with the transcript when it finds a stored one does not hold: audited here anyway.
  if (!r.ok && r.status !== 422)
    throw new VerifyInputError(`${url} answered ${r.status}: ${describeAnswer(r.text)}`);
  return r.text;
}

function parsePage(text: string): HistoryPage {
  const p = parseUniqueJson(text, 'the history') as Partial<HistoryPage> | null;
  const hex = (x: unknown) => x === null || (typeof x === 'string' && /^[0-9a-f]{64}$/.test(x));
  if (
    p === null ||
    typeof p !== 'object' ||
    !Array.isArray(p.items) ||
    !(p.nextCursor === null || typeof p.nextCursor === 'string') ||
    !p.items.every(
      (i) =>
        i !== null &&
        typeof i === 'object' &&
        typeof i.requestId === 'string' &&
        Number.isFinite(i.createdAt) &&
        hex(i.verdictDigest) &&
        hex(i.transcriptRoot),
    )
  ) {
    throw new VerifyInputError('the history is not a page of requests ({items, nextCursor})');
  }
  return p as HistoryPage;
}

/** The audit as lines for a terminal. */
export function formatAudit(r: AuditReport): string {
  const lines = [
    `audited ${r.checked} request${r.checked === 1 ? '' : 's'} of ${r.relay}: ${r.held} hold, ${r.failures.length} do not${uncheckedTotal(r)}`,
    ...coordinatorLines(r),
    ...incompleteLines(r),
  ];
  for (const p of r.problems) lines.push(`  ${p}`);
  for (const f of r.failures) {
    lines.push(`  ${f.requestId}`);
    for (const why of f.reasons) lines.push(`    - ${why}`);
  }
  lines.push(...warningLines(r));
  return printableLines(lines);
}

/** Whom the audit held the transcripts to, and who signed them: the lines after an audit's totals. */
export function coordinatorLines(r: AuditReport): string[] {
  const { published, pinned } = r.coordinator;
  const relaySays =
    published === undefined
      ? []
      : [
          published === null
            ? 'the relay publishes none (/healthz)'
            : `the relay publishes ${published} (/healthz)`,
        ];
  const lines =
    pinned === null
      ? [`  coordinator: none pinned (--coordinator pins it)${relaySays.map((x) => `; ${x}`).join('')}`]
      : [
          `  coordinator: ${pinned.ids.join(', ')}, ${pinned.by}: every request must be signed by ${pinned.ids.length === 1 ? 'it' : 'one of them'}`,
          ...(pinned.ids.length === 1 && pinned.ids[0] === published ? [] : relaySays.map((x) => `  ${x}`)),
        ];
  const signers = Object.entries(r.signedBy).sort((a, b) => b[1] - a[1]);
  if (signers.length > 0)
    lines.push(`  requests signed by: ${signers.map(([id, n]) => `${id} (${n})`).join(', ')}`);
  return lines;
}

/** `, N not checked (rate-limited)` after the totals, when some were not. */
export function uncheckedTotal(r: AuditReport): string {
  return r.unchecked.length === 0 ? '' : `, ${r.unchecked.length} not checked (rate-limited)`;
}

/** What the audit left out, and why: that it audited nothing, what --limit cut, the requests rate-limited, where it stopped early. */
export function incompleteLines(r: AuditReport): string[] {
  const lines: string[] = [];
  if (r.nothing !== null) lines.push(`  NOTHING AUDITED: ${r.nothing}`);
  if (r.limited !== null) lines.push(`  ${r.limited}`);
  if (r.incomplete !== null) lines.push(`  INCOMPLETE: ${r.incomplete}`);
  if (r.unchecked.length > 0) {
    lines.push('  not checked (neither held nor failed):');
    for (const u of r.unchecked) lines.push(`  ${u.requestId}`, `    - ${u.why}`);
  }
  return lines;
}

/** The warnings of an audit (requests that hold, with something said beside them), after its failures. */
export function warningLines(r: Pick<AuditReport, 'warnings'>): string[] {
  if (r.warnings.length === 0) return [];
  const lines = [
    `  warnings (${r.warnings.length} request${r.warnings.length === 1 ? '' : 's'}; they fail nothing):`,
  ];
  for (const w of r.warnings) {
    lines.push(`  ${w.requestId}`);
    for (const why of w.reasons) lines.push(`    ! ${why}`);
  }
  return lines;
}
