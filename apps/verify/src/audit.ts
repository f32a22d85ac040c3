/**
 * `synod-verify --relay URL`: audit a relay, trusting nothing it says. Walks its public history
 * (`GET /v1/history`, every request with a verdict or a no-consensus outcome, newest first), fetches each
 * transcript (`GET /v1/verify/<id>`) and re-derives the verdict here (`verifyTranscript`), comparing it
 * with what the relay published twice: in the history listing and beside the transcript.
 */
import { fetchText } from './fetch-text.ts';
import { printableLines } from './printable.ts';
import { reasonsOf, type VerifyReport, verifyInput } from './report.ts';
import {
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
}

/** The terminal outcomes whose transcripts carry a verdict to re-derive. */
const AUDITED_STATUSES = ['verdict', 'no-consensus'] as const;
const PAGE = 100;

interface HistoryItem {
  requestId: string;
  verdictDigest: string | null;
  transcriptRoot: string | null;
  /** As listed (`verdict` or `no-consensus` here): compared with the derived verdict's outcome. */
  status?: unknown;
  winnerNodeId?: unknown;
  winnerModelId?: unknown;
}

interface HistoryPage {
  items: HistoryItem[];
  nextCursor: string | null;
}

/** Audit a relay (see the file's header). A relay that cannot be read is a `VerifyInputError`. */
export async function auditRelay(o: AuditOptions): Promise<AuditReport> {
  const base = o.relay.replace(/\/+$/, '');
  const report: AuditReport = { relay: base, checked: 0, held: 0, failures: [] };
  for (const status of AUDITED_STATUSES) {
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ status, limit: String(Math.min(PAGE, o.limit - report.checked)) });
      if (o.model !== undefined) q.set('model', o.model);
      if (o.node !== undefined) q.set('node', o.node);
      if (cursor !== null) q.set('cursor', cursor);
      if (Number(q.get('limit')) < 1) return report;
      const page = parsePage(await getText(`${base}/v1/history?${q}`, o.timeoutS, 'history'));
      for (const item of page.items) {
        const failure = await auditOne(base, item, o.timeoutS);
        report.checked++;
        if (failure) report.failures.push(failure);
        else report.held++;
        o.onChecked?.(report.checked);
      }
      cursor = page.nextCursor;
    } while (cursor !== null && report.checked < o.limit);
  }
  return report;
}

async function auditOne(base: string, item: HistoryItem, timeoutS: number): Promise<AuditFailure | null> {
  let verified: Verified;
  try {
    verified = await fetchAndVerify(`${base}/v1/verify/${encodeURIComponent(item.requestId)}`, timeoutS);
  } catch (e) {
    if (e instanceof VerifyInputError) return { requestId: item.requestId, reasons: [e.message] };
    throw e;
  }
  const { report } = verified;
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
  return reasons.length > 0 ? { requestId: item.requestId, reasons } : null;
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
export async function fetchAndVerify(url: string, timeoutS: number): Promise<Verified> {
  const input = readVerifyInput(await getText(url, timeoutS, 'transcript'), `the transcript at ${url}`);
  return { input, report: await verifyInput(input) };
}

/** The text at `url`; any status but a success (or a 422 with a transcript that does not hold) throws. */
export async function getText(url: string, timeoutS: number, what: string): Promise<string> {
  const r = await fetchText(url, timeoutS, what);
  // A relay answers 422 with the transcript when it finds a stored one does not hold: audited here anyway.
  if (!r.ok && r.status !== 422)
    throw new VerifyInputError(`${url} answered ${r.status}: ${r.text.slice(0, 200)}`);
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
    `audited ${r.checked} request${r.checked === 1 ? '' : 's'} of ${r.relay}: ${r.held} hold, ${r.failures.length} do not`,
  ];
  for (const f of r.failures) {
    lines.push(`  ${f.requestId}`);
    for (const why of f.reasons) lines.push(`    - ${why}`);
  }
  return printableLines(lines);
}
