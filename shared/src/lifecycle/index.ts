/**
 * # Request lifecycle (layer 3): pure state machines
 *
 * One machine per request and role, in the sans-I/O style: a machine never reads a clock, draws random
 * bytes, signs, stores or sends. Every transition is
 *
 *     step(config, state, event) -> { state, effects }
 *
 * where `event` carries the driver's `now` (and, for inference results, the random salt), `state` is a
 * new plain-JSON object (the input is never mutated), and `effects` is an ordered list of data the
 * driver carries out. The same machines run in a browser tab, a Bun relay, a Worker and the seeded
 * simulator in `sim.test.ts`.
 *
 * ## Roles
 * | role        | start                | does                                                                 |
 * |-------------|----------------------|----------------------------------------------------------------------|
 * | coordinator | `startCoordinator`   | publishes the request; counts commits (eligible, one per node); seals at `maxCommits` (early close) or at `createdAt + maxTimeMs` with >= quorum, else expires `quorum-not-met`; expires `declined` at once when the declines it counts (`trustedDeclines`: as a seal would seat their nodes) reach quorum with fewer than quorum commits (as it does when it could only seal past `createdAt + maxTimeMs` + the nodes' grace, `sealBy`, when they have dropped what they committed); collects reveals (only after the seal); computes the verdict when every member revealed (early) or at `seal.createdAt + revealWindowMs`; publishes it; collects attestations |
 * | node        | `initNode`           | picks up a request it serves (models, embedder, eligibility, capacity, deadline); `start-inference`; commits on `inference-done`; on `inference-failed` with a `decline` (a prompt that fills its model's context) publishes a signed `decline` and is done `declined`; reveals only after a seal that lists its commitment (and is dated as a verifiable seal is), else drops the material; recomputes the verdict and attests (a sealed member with `claimsEmbedder` first checks the verdict's re-embedding claims, `embed-claims`, and does not attest a false one) |
 * | follower    | `initFollower`       | tracks pending -> committed -> sealed -> revealing -> verdict / expired (`lifecycleStatus`); recomputes the verdict; attests if configured |
 *
 * The coordinator of a request is its request packet's author (`request.from`): seals and verdicts
 * from anyone else are rejected.
 *
 * ## Events (`types.ts`)
 * - `{kind:'packet', now, packet}`: a packet the driver verified (`verifyPacket`: schema, signature,
 *   clock skew), including the loopback of the machine's own publishes. Duplicates are ignored.
 * - `{kind:'timer', now, name}`: an armed timer came due (unarmed names are ignored).
 * - `{kind:'restored', now}`: the state was loaded after a restart.
 * - node only: `{kind:'inference-done', now, requestId, model, output, bEmbedding, salt, finishReason?, usage?}` and
 *   `{kind:'inference-failed', now, requestId, reason, decline?}`.
 * - node (a follower too, if configured): `{kind:'claims-embedded', now, requestId, verdictDigest, bits}`
 *   and `{kind:'claims-not-embedded', now, requestId, verdictDigest, reason}`, the answers to `embed-claims`.
 *
 * ## Effects (`types.ts`), carried out in order
 * - `publish {packetType, body, id}`: sign with the machine's key, publish, feed the signed packet back.
 *   `id` is the packet id it will have (ids do not cover signatures).
 * - `set-timer {name, at}` / `cancel-timer {name}`: timers keyed by (requestId, name).
 * - `start-inference {requestId, model, embeddingModel, input, params, deadline}` / `cancel-inference`.
 * - `persist {reason}`: write-ahead barrier; store `serializeState(durableState(state))` before the
 *   effects after it.
 * - `embed-claims {requestId, verdictDigest, embeddingModel, reveals}`: a sealed member with
 *   `claimsEmbedder` asks for its bits of the texts a verdict's re-embedding claims name before it attests
 *   (attest.ts); it judges the answer itself (REEMBED_CLAIM_FALSE: no attestation).
 * - `verdict {verdict, digest, transcriptRoot, check}`: computed (coordinator) or checked (others).
 * - `evidence {evidence}`: signed proof of misbehaviour (double commit, double seal, double or invalid
 *   verdict), checkable from its packets alone.
 * - `rejected {code, reason, packetId}`: an event was ignored; network input never throws.
 * - `done {reason}` / `expired {reason}`: the machine is finished; all its timers were cancelled.
 * A driver programming error (wrong event kind or request, malformed inference result, a state of
 * another role) throws `SynodError('LIFECYCLE_INVALID_EVENT')`.
 *
 * ## State and restarts (`state.ts`)
 * State is plain JSON (`serializeState` / `restoreState`); what is stored is `durableState(state)`, less
 * the reveals of nodes outside the seal and those waiting for it (not needed to resume, see `durableState`,
 * so a step that only took one in writes nothing). Persist it after each step (and before the
 * effects that follow a `persist`); after a restart feed `restored`: outstanding publishes go out again
 * (idempotent: same body, same id, deterministic Ed25519 signature), timers are re-armed, deadlines
 * that passed fire at once (a coordinator seals or expires, a node whose inference was lost restarts it
 * or expires `deadline-passed`).
 *
 * ## Order independence
 * Nodes and followers hold packets that come early (a seal before its request, a reveal before the
 * seal) and replay them when they can be checked, so what they conclude depends on which packets they
 * saw, not on their order. The coordinator is stricter by design: it decides the seal, so a reveal
 * before its seal, or a commit after it, is a protocol violation and is rejected.
 *
 * ## Eligibility (`eligibility.ts`)
 * `eligibilityScore(requestId, nodeId)` = hex sha256 of the tagged ("synod/v1/eligibility") request and
 * node ids; `isEligible(requestId, nodeId, candidates, slots)` is true when the node's score is among the
 * `slots` smallest of the candidates (itself included). `eligibilityPredicate(candidates, slots)` makes
 * the `isEligible` callback the machines' configs take.
 */
export { NON_MEMBER_REVEAL_BYTES, revealBytes } from './common.ts';
export * from './coordinator.ts';
export * from './eligibility.ts';
export * from './follower.ts';
export * from './node.ts';
export {
  MAX_DEFERRED_REVEAL_BYTES,
  MAX_OPEN_COMMITS,
  type ObserverConfig,
  REVEALS_PER_MEMBER,
  selectReveals,
  type Verification,
} from './observer.ts';
export * from './reannounce.ts';
export * from './seats.ts';
export * from './state.ts';
export * from './status.ts';
export * from './types.ts';
