/**
 * `synod-verify ARCHIVE`: a `synod-relay history prune --archive` file (JSON Lines, one request a line,
 * `edge/src/store/history-prune.ts`), or any part of one (`grep … FILE | synod-verify -`), verified line
 * by line as a relay audit is: each line re-derived here and compared with what it says (its digest,
 * root, status and the coordinator's signed verdict), with the totals, the failures with their reasons,
 * and the requests audited. The archive may hold a line twice (a batch archived again after a crash):
 * a line repeating an earlier one is counted once and said, never a failure. A line of a request never
 * sealed has nothing to re-derive and is listed as such.
 */
import {
  type AuditReport,
  addAudited,
  coordinatorLines,
  countSigner,
  emptyAudit,
  incompleteLines,
  isEmpty,
  warningLines,
} from './audit.ts';
import { printableLines } from './printable.ts';
import { type CoordinatorPin, reasonsOf, verifyInput } from './report.ts';
import { readVerifyInput, VerifyInputError } from './verify-input.ts';

export interface ArchiveReport extends AuditReport {
  /** Lines that are not empty. */
  lines: number;
  /** Lines repeating an earlier one byte for byte (`line`), counted once (`sameAs`, 1-based). */
  repeated: { line: number; sameAs: number }[];
  /** Requests whose lines differ, each audited (the lines, 1-based). */
  differing: { requestId: string; lines: number[] }[];
  /** Requests never sealed: nothing to re-derive. */
  neverSealed: { line: number; requestId: string; why: string }[];
}

/**
 * The lines of `text` when it is JSON Lines of objects (two or more lines, the first a JSON object) and
 * not one JSON value; null otherwise (one transcript or answer, read as such).
 */
export function archiveLines(text: string): string[] | null {
  const json = text.replace(/^\uFEFF/, '');
  try {
    JSON.parse(json);
    return null;
  } catch {
    // Not one JSON value: JSON Lines, perhaps.
  }
  const lines = json.split(/\r?\n/);
  if (lines.filter((l) => l.trim() !== '').length < 2) return null;
  const first = lines.find((l) => l.trim() !== '') as string;
  try {
    const v = JSON.parse(first) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? lines : null;
  } catch {
    return null;
  }
}

/** Verify each line of an archive (see the file's header); `from` names it (`the file x.jsonl`). */
export async function auditArchive(
  lines: readonly string[],
  from: string,
  coordinators: CoordinatorPin | null,
): Promise<ArchiveReport> {
  const report: ArchiveReport = {
    ...emptyAudit(from, { pinned: coordinators }),
    lines: 0,
    repeated: [],
    differing: [],
    neverSealed: [],
  };
  const firstSeen = new Map<string, number>();
  const linesOf = new Map<string, number[]>();
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const n = i + 1;
    report.lines++;
    const same = firstSeen.get(line);
    if (same !== undefined) {
      report.repeated.push({ line: n, sameAs: same });
      continue;
    }
    firstSeen.set(line, n);
    const where = `line ${n} of ${from}`;
    const named = requestIdOf(line) ?? `(${where})`;
    let input: ReturnType<typeof readVerifyInput>;
    try {
      input = readVerifyInput(line, where);
    } catch (e) {
      if (!(e instanceof VerifyInputError)) throw e;
      if (e.message.startsWith('no transcript: the request was never sealed')) {
        report.neverSealed.push({ line: n, requestId: named, why: e.message });
      } else {
        // A line that is not an archived request (cut short, altered): that request's record is lost.
        addAudited(report, named, null, [e.message]);
      }
      continue;
    }
    const verified = await verifyInput(input, coordinators === null ? {} : { coordinators });
    countSigner(report.signedBy, verified);
    const requestId = verified.check.ok ? verified.check.requestId : named;
    linesOf.set(requestId, [...(linesOf.get(requestId) ?? []), n]);
    addAudited(report, requestId, verified, reasonsOf(verified));
  }
  for (const [requestId, at] of linesOf) if (at.length > 1) report.differing.push({ requestId, lines: at });
  if (isEmpty(report)) {
    report.nothing = `${from} holds no sealed request (${report.neverSealed.length} never sealed)`;
  }
  return report;
}

/** The `requestId` a line names, when it is JSON naming one as a string. */
function requestIdOf(line: string): string | undefined {
  try {
    const id = (JSON.parse(line) as { requestId?: unknown } | null)?.requestId;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** The archive's audit as lines for a terminal. */
export function formatArchiveAudit(r: ArchiveReport): string {
  const lines = [
    `audited ${r.checked} request${r.checked === 1 ? '' : 's'} of ${r.relay} (${r.lines} line${r.lines === 1 ? '' : 's'}): ${r.held} hold, ${r.failures.length} do not, ${r.neverSealed.length} never sealed`,
    ...coordinatorLines(r),
    ...incompleteLines(r),
  ];
  if (r.repeated.length > 0) {
    lines.push(
      `  ${r.repeated.length} line${r.repeated.length === 1 ? ' repeats' : 's repeat'} an earlier one, counted once: ${r.repeated.map((x) => `line ${x.line} (= line ${x.sameAs})`).join(', ')}`,
    );
  }
  for (const d of r.differing) {
    lines.push(
      `  ${d.requestId} is in ${d.lines.length} lines that differ (lines ${d.lines.join(', ')}): each audited`,
    );
  }
  if (r.neverSealed.length > 0) lines.push('  never sealed (nothing to re-derive):');
  for (const x of r.neverSealed) lines.push(`  ${x.requestId} (line ${x.line})`);
  for (const f of r.failures) {
    lines.push(`  ${f.requestId}`);
    for (const why of f.reasons) lines.push(`    - ${why}`);
  }
  lines.push(...warningLines(r));
  return printableLines(lines);
}
