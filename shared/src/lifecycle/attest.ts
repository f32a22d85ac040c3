import { hamming } from '../embedding/binary.ts';
import { fromHex, tryFromHex } from '../encoding/bytes.ts';
import { driverError, finishDone, publish, reject } from './common.ts';
import type { ObserverConfig, ObserverState } from './observer.ts';
import type { ClaimsEvent, Effect, EmbedClaimsEffect, Received } from './types.ts';

/**
 * What an observer (a node, or a follower set to attest) does once the verdict it holds recomputed:
 * attest it, or first check its re-embedding claims (consensus rule 8, docs/protocol.md).
 *
 * A verdict's `reembedded` claims are its coordinator's word that the texts it rejected
 * EMBEDDING_DISAGREES embed to other bits than their authors revealed. The recomputation takes them as
 * given, so an attestation of such a verdict vouches for them too. A sealed member whose driver embeds
 * with the frame's embedder (`ObserverConfig.claimsEmbedder`) checks them before it attests: it asks the
 * driver for its bits of each claimed reveal's text (`embed-claims`), waits (`checkingClaims`) and judges
 * the answer here, with `synod-verify --reembed`'s rule: a claim is false when it is more than the
 * tolerance (`claimToleranceBits`, default 0) from the bits here. Every claim holds: it attests. One
 * does not: no attestation, REEMBED_CLAIM_FALSE, done `reembed-claim-false`. The embedder failed: no
 * attestation, done `reembed-claims-unchecked` (it could judge and did not; an attestation would vouch
 * for what it never checked). Without such an embedder (none, another model) or outside the seal, the
 * claims are taken as given, as before: it attests, since it cannot judge them.
 *
 * Why an effect and an event rather than a driver that holds the attestation's publish back until it
 * has checked: whether to co-sign is a protocol decision, made here with the rest of them (which claims,
 * which tolerance, what a failure means, what a restart does), and the state says where the machine is.
 * A driver holding back a publish the machine took as done would leave a state that says it attested
 * (its outbox, published again after a restart, and its outcome `verified`) when it had not. The driver
 * only embeds texts, as it only runs the engine for `start-inference`.
 */

/** Attest the recomputed verdict, or ask for its claims to be checked first. */
export function attestOrCheck(config: ObserverConfig, s: ObserverState, fx: Effect[], now: number): void {
  const reveals = claimedReveals(config, s);
  if (reveals.length === 0) {
    attest(s, fx, now);
    finishDone(s, fx, 'verified', now);
    return;
  }
  s.checkingClaims = true;
  fx.push(embedClaims(s, reveals));
}

/**
 * After a restart: a check under way when the process stopped is asked for again (its embedding went
 * with the process); one the driver can no longer make (restarted without the embedder) is taken as
 * given, as when there is none.
 */
export function claimsRestored(config: ObserverConfig, s: ObserverState, fx: Effect[], now: number): void {
  if (s.outcome !== null || s.checkingClaims !== true) return;
  const reveals = claimedReveals(config, s);
  if (reveals.length > 0) {
    fx.push(embedClaims(s, reveals));
    return;
  }
  s.checkingClaims = false;
  attest(s, fx, now);
  finishDone(s, fx, 'verified', now);
}

/** The driver's answer to `embed-claims`: judge the claims, then attest or not. */
export function onClaims(config: ObserverConfig, s: ObserverState, fx: Effect[], event: ClaimsEvent): void {
  if (event.requestId !== s.requestId) {
    driverError('a claims event for another request was routed to this machine', {
      requestId: event.requestId,
      machine: s.requestId,
    });
  }
  if (s.outcome !== null) {
    reject(fx, 'FINISHED', `this machine has ${s.outcome.kind}`, null);
    return;
  }
  const verdict = s.verdict;
  if (
    s.checkingClaims !== true ||
    verdict === null ||
    verdict.packet.body.verdictDigest !== event.verdictDigest
  ) {
    reject(fx, 'WRONG_PHASE', 'no check of these claims is under way', null);
    return;
  }
  s.checkingClaims = false;
  if (event.kind === 'claims-not-embedded') {
    finishDone(s, fx, 'reembed-claims-unchecked', event.now);
    return;
  }
  const bytes = (s.request as Received<'request'>).packet.body.frame.embeddingModel.bits / 8;
  const tolerance = config.claimToleranceBits ?? 0;
  const wrong: string[] = [];
  for (const claim of verdict.packet.body.verdict.reembedded ?? []) {
    const text = event.bits[claim.revealId];
    const here = text === undefined ? null : tryFromHex(text, bytes);
    if (here === null) {
      driverError(`claims-embedded must give ${bytes * 8} bits (lowercase hex) for every reveal asked for`, {
        revealId: claim.revealId,
      });
    }
    const distance = hamming(here, fromHex(claim.bits));
    if (distance > tolerance) {
      wrong.push(
        `the claim about node ${claim.nodeId}'s reveal ${claim.revealId} is ${distance} bits from its text's embedding here`,
      );
    }
  }
  if (wrong.length > 0) {
    reject(
      fx,
      'REEMBED_CLAIM_FALSE',
      `${wrong.join('; ')} (tolerance ${tolerance}): not attested`,
      verdict.id,
    );
    finishDone(s, fx, 'reembed-claim-false', event.now);
    return;
  }
  attest(s, fx, event.now);
  finishDone(s, fx, 'verified', event.now);
}

/**
 * The reveals whose claims this machine checks before attesting (one a claim), or none: no claims, no
 * embedder for the frame's model here (the same id and file hash, at least its bits: a frame may take a
 * prefix), or not a member of the seal (the check's cost is a member's: at most one claim a member and
 * text, `maxCommits` members).
 */
function claimedReveals(config: ObserverConfig, s: ObserverState): EmbedClaimsEffect['reveals'] {
  const claims = s.verdict?.packet.body.verdict.reembedded ?? [];
  const mine = config.claimsEmbedder;
  const request = s.request?.packet.body;
  if (claims.length === 0 || mine === undefined || request === undefined || s.seal === null) return [];
  const pinned = request.frame.embeddingModel;
  if (pinned.id !== mine.id || pinned.fileHash !== mine.fileHash || pinned.bits > mine.bits) return [];
  if (!s.seal.packet.body.members.some((m) => m.nodeId === s.self)) return [];
  return claims.map((c) => {
    // A verdict recomputes only over reveals held, those its claims name among them (`selectReveals`).
    const reveal = s.reveals.find((r) => r.id === c.revealId);
    if (reveal === undefined)
      throw new Error(`invariant: a recomputed verdict's claimed reveal ${c.revealId} is held`);
    return { revealId: c.revealId, output: reveal.packet.body.output };
  });
}

function embedClaims(s: ObserverState, reveals: EmbedClaimsEffect['reveals']): EmbedClaimsEffect {
  const request = s.request as Received<'request'>;
  const verdict = s.verdict as Received<'verdict'>;
  return {
    kind: 'embed-claims',
    requestId: s.requestId,
    verdictDigest: verdict.packet.body.verdictDigest,
    embeddingModel: request.packet.body.frame.embeddingModel,
    reveals,
  };
}

function attest(s: ObserverState, fx: Effect[], now: number): void {
  const body = (s.verdict as Received<'verdict'>).packet.body;
  publish(s, fx, 'attestation', {
    requestId: s.requestId,
    verdictDigest: body.verdictDigest,
    transcriptRoot: body.transcriptRoot,
    createdAt: now,
  });
}
