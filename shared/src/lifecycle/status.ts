import type { Verdict, VerdictBody } from '../packets/schemas.ts';
import type { CoordinatorState } from './coordinator.ts';
import type { FollowerState } from './follower.ts';
import type { NodeState } from './node.ts';
import type { ObserverState } from './observer.ts';
import type { Outcome, Role } from './types.ts';

export type LifecycleState = CoordinatorState | NodeState | FollowerState;

/** Where a request stands, as a requester sees it. */
export type LifecyclePhase = 'pending' | 'committed' | 'sealed' | 'revealing' | 'verdict' | 'expired';

export interface LifecycleStatus {
  requestId: string;
  role: Role;
  phase: LifecyclePhase;
  /** Nodes with a commit held: before the seal, those counted so far; after it, the sealed ones. */
  commits: number;
  /** Members of the seal, once sealed. */
  sealSize: number | null;
  /** Sealed members with a reveal held. */
  revealed: number;
  /** Attestations of the verdict held. */
  attestations: number;
  verdict: {
    status: Verdict['status'];
    digest: string;
    transcriptRoot: string;
    /** 'computed' (coordinator) or how far a node or follower has checked it. */
    check: 'computed' | 'recomputed' | 'digest' | 'mismatch';
    /** The winning output when accepted. */
    output: string | null;
  } | null;
  outcome: Outcome | null;
  /** Done or expired: the machine takes no more packets. */
  finished: boolean;
}

/** A plain snapshot of a machine's progress, for status endpoints and UIs. Pure. */
export function lifecycleStatus(state: LifecycleState): LifecycleStatus {
  const base = state.role === 'coordinator' ? coordinatorCounts(state) : observerCounts(state);
  let phase: LifecyclePhase;
  if (state.outcome?.kind === 'expired') phase = 'expired';
  else if (base.verdict !== null) phase = 'verdict';
  else if (base.sealSize !== null) phase = base.revealed > 0 ? 'revealing' : 'sealed';
  else phase = base.commits > 0 ? 'committed' : 'pending';
  return {
    requestId: state.requestId,
    role: state.role,
    phase,
    ...base,
    outcome: state.outcome,
    finished: state.outcome !== null,
  };
}

type Counts = Pick<LifecycleStatus, 'commits' | 'sealSize' | 'revealed' | 'attestations' | 'verdict'>;

function revealedMembers(members: readonly { nodeId: string }[], revealers: readonly string[]): number {
  const seen = new Set(revealers);
  return members.filter((m) => seen.has(m.nodeId)).length;
}

function coordinatorCounts(s: CoordinatorState): Counts {
  return counts(s.commits.length, s.seal?.body ?? null, s, s.verdict?.body ?? null, 'computed');
}

function observerCounts(s: ObserverState): Counts {
  return counts(
    new Set(s.commits.map((c) => c.packet.from)).size,
    s.seal?.packet.body ?? null,
    s,
    s.verdict?.packet.body ?? null,
    s.verification === 'none' ? 'digest' : s.verification,
  );
}

/** What both kinds of machine report, from their seal, reveals and verdict. */
function counts(
  commits: number,
  seal: { members: readonly { nodeId: string }[] } | null,
  s: { reveals: readonly { packet: { from: string } }[]; attestations: readonly unknown[] },
  v: VerdictBody | null,
  check: NonNullable<LifecycleStatus['verdict']>['check'],
): Counts {
  const members = seal?.members ?? null;
  return {
    commits,
    sealSize: members?.length ?? null,
    revealed: members
      ? revealedMembers(
          members,
          s.reveals.map((r) => r.packet.from),
        )
      : 0,
    attestations: s.attestations.length,
    verdict: v && {
      status: v.verdict.status,
      digest: v.verdictDigest,
      transcriptRoot: v.transcriptRoot,
      check,
      output: v.verdict.winner?.output ?? null,
    },
  };
}
