/**
 * The result of a chain audit (chain-audit.ts): the answers (`LLMFulfilled`) and the refunds
 * (`LLMRefunded`) side by side, each counted. The totals (`checked`, `held`, `failures`) cover both; a
 * refund that is not re-derivable (refund-audit.ts) counts as checked but neither holds nor fails.
 */
import {
  type AuditReport,
  addAudited,
  coordinatorLines,
  emptyAudit,
  incompleteLines,
  uncheckedTotal,
  warningLines,
} from './audit.ts';
import { printableLines } from './printable.ts';
import type { RefundAudit } from './refund-audit.ts';
import type { VerifyReport } from './report.ts';

export interface ChainAuditReport extends AuditReport {
  answers: { checked: number; held: number; failed: number };
  refunds: { checked: number; held: number; failed: number; notRederivable: number; items: RefundAudit[] };
}

/** An empty report of `relay` (its description: relay, oracle and chain), and whom it holds transcripts to. */
export function emptyChainReport(relay: string, coordinator: AuditReport['coordinator']): ChainAuditReport {
  return {
    ...emptyAudit(relay, coordinator),
    answers: { checked: 0, held: 0, failed: 0 },
    refunds: { checked: 0, held: 0, failed: 0, notRederivable: 0, items: [] },
  };
}

/** Count an answer's audit (its transcript verified here, null when none; and why it fails) into the report. */
export function addAnswer(
  r: ChainAuditReport,
  requestId: string,
  verified: VerifyReport | null,
  reasons: readonly string[],
): void {
  addAudited(r, requestId, verified, reasons);
  r.answers.checked++;
  if (reasons.length === 0) r.answers.held++;
  else r.answers.failed++;
}

/** Count a refund's audit into the report; a failing one is listed with the answers that fail. */
export function addRefund(r: ChainAuditReport, a: RefundAudit): void {
  r.checked++;
  r.refunds.checked++;
  r.refunds.items.push(a);
  if (a.outcome === 'holds') {
    r.held++;
    r.refunds.held++;
  } else if (a.outcome === 'fails') {
    r.refunds.failed++;
    r.failures.push({ requestId: a.requestId, reasons: [refundLine(a), ...a.why] });
  } else r.refunds.notRederivable++;
}

/** `LLMRefunded REASON by 0x… (the bridge), tx 0x…`. */
function refundLine(a: RefundAudit): string {
  return `LLMRefunded ${a.reason} by ${a.sender} (${a.byBridge ? 'the bridge' : 'not the bridge'}), tx ${a.txHash}`;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** The chain audit as lines for a terminal. */
export function formatChainAudit(r: ChainAuditReport): string {
  const a = r.answers;
  const f = r.refunds;
  const lines = [
    `audited ${plural(r.checked, 'request', 'requests')} of ${r.relay}: ${r.held} hold, ${r.failures.length} do not, ${f.notRederivable} not re-derivable${uncheckedTotal(r)}`,
    `  answers (LLMFulfilled): ${a.checked} audited, ${a.held} hold, ${a.failed} do not`,
    `  refunds (LLMRefunded):  ${f.checked} audited, ${f.held} hold, ${f.failed} do not, ${f.notRederivable} not re-derivable`,
    ...coordinatorLines(r),
    ...incompleteLines(r),
  ];
  for (const x of r.failures) {
    lines.push(`  ${x.requestId}`);
    for (const why of x.reasons) lines.push(`    - ${why}`);
  }
  const neither = f.items.filter((i) => i.outcome === 'not-re-derivable');
  if (neither.length > 0) lines.push('  not re-derivable (neither held nor failed):');
  for (const i of neither) {
    lines.push(`  ${i.requestId}`, `    - ${refundLine(i)}`);
    for (const why of i.why) lines.push(`    - ${why}`);
  }
  lines.push(...warningLines(r));
  return printableLines(lines);
}
