import { buildTranscript, verifyTranscript } from '@synod/shared';
import type { Hono } from 'hono';
import { parseJson, readBody } from '../http/body.ts';
import { edgeError, rateLimitedError } from '../http/errors.ts';
import { TERMINAL } from '../views.ts';
import type { EdgeDeps } from './deps.ts';
import { requestIdParam } from './inference.ts';
import { limitReads } from './public.ts';

/**
 * The public verifier. `POST /v1/verify` takes `{ transcript, expectedVerdictDigest?, expectedRoot? }`
 * (or a bare transcript) and recomputes every signature, commitment and the consensus: 200 with the
 * verdict when everything holds, 422 with the precise reasons when it does not. `GET /v1/verify/:id`
 * re-verifies a stored request against the verdict the coordinator published; its answer carries the
 * published `verdictDigest` and `transcriptRoot` either way (on a 422, beside the reasons they fail).
 */
export function mountVerify(app: Hono, deps: EdgeDeps): void {
  app.post('/v1/verify', async (c) => {
    const wait = deps.limiter.take(`verify:${deps.clientAddress(c)}`);
    if (wait > 0) throw rateLimitedError(wait);
    const raw = parseJson(await readBody(c, deps.config.verifyBodyLimit)) as Record<string, unknown> | null;
    const wrapped = raw !== null && typeof raw === 'object' && 'transcript' in raw;
    const transcript = wrapped ? raw['transcript'] : raw;
    const expectedVerdictDigest = wrapped ? raw['expectedVerdictDigest'] : undefined;
    const expectedRoot = wrapped ? raw['expectedRoot'] : undefined;
    for (const [name, v] of [
      ['expectedVerdictDigest', expectedVerdictDigest],
      ['expectedRoot', expectedRoot],
    ] as const) {
      if (v !== undefined && (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v))) {
        throw edgeError(400, 'INVALID_INPUT', `${name} must be 64 lowercase hex digits`);
      }
    }
    const check = await verifyTranscript(transcript, {
      ...(typeof expectedVerdictDigest === 'string' ? { expectedVerdictDigest } : {}),
      ...(typeof expectedRoot === 'string' ? { expectedRoot } : {}),
    });
    deps.metrics.inc('synod_verify_total', 'Transcripts verified', { ok: String(check.ok) });
    if (check.ok) {
      return c.json({
        ok: true,
        requestId: check.requestId,
        verdictDigest: check.verdictDigest,
        transcriptRoot: check.root,
        verdict: check.verdict,
      });
    }
    return c.json({ ok: false, error: check.error.toJSON() }, 422);
  });

  app.get('/v1/verify/:id', limitReads(deps), async (c) => {
    const id = requestIdParam(c);
    const d = await deps.store.getRequest(id);
    if (!d) {
      if (await deps.intake.queued(id)) {
        throw edgeError(409, 'NO_VERDICT', `request ${id} has no verdict yet (status queued)`, {
          status: 'queued',
        });
      }
      throw edgeError(404, 'NOT_FOUND', `no request ${id}`);
    }
    const packets = await deps.store.transcriptPackets(id);
    if (!packets || !d.verdict) {
      const final = TERMINAL.has(d.status);
      throw edgeError(
        409,
        'NO_VERDICT',
        `request ${id} has no verdict${final ? '' : ' yet'} (status ${d.status})`,
        { status: d.status },
      );
    }
    const published = d.verdict.packet.body;
    // The nodes' signed attestations of the verdict, as received: not part of the transcript, but anyone
    // can check their signatures and what they attest (synod-verify does).
    const attestations = d.attestations.map((a) => a.packet);
    const transcript = buildTranscript(packets);
    const check = await verifyTranscript(transcript, {
      expectedVerdictDigest: published.verdictDigest,
      expectedRoot: published.transcriptRoot,
    });
    if (check.ok) {
      return c.json({
        ok: true,
        requestId: id,
        verdictDigest: check.verdictDigest,
        transcriptRoot: check.root,
        verdict: check.verdict,
        transcript,
        attestations,
      });
    }
    // What the relay published (its verdict packet's digest and root) goes beside the reasons, so that
    // whoever re-derives the transcript elsewhere compares it too: a transcript that holds under
    // another verdict than the published one must not read as an answer that holds.
    return c.json(
      {
        ok: false,
        error: check.error.toJSON(),
        verdictDigest: published.verdictDigest,
        transcriptRoot: published.transcriptRoot,
        transcript,
        attestations,
      },
      422,
    );
  });
}
