import {
  type AnyPacket,
  buildTranscript,
  claimedReembeddings,
  ReembeddingClaimSchema,
  verifyTranscript,
} from '@synod/shared';
import type { Hono } from 'hono';
import * as z from 'zod';
import { bodyGuard, parseJson, readBody } from '../http/body.ts';
import { edgeError, rateLimitedError } from '../http/errors.ts';
import { HeavyReads } from '../http/heavy-reads.ts';
import { TERMINAL } from '../views.ts';
import type { EdgeDeps } from './deps.ts';
import { notFound, requestIdParam } from './inference.ts';
import { limitReads } from './public.ts';

/** Packets of a transcript that cost the verifier one more token (a signature check each, and more). */
const PACKETS_PER_TOKEN = 32;
/** Body bytes that cost one more token (parsed, canonicalized and hashed). */
const BYTES_PER_TOKEN = 128 * 1024;

/**
 * Tokens of the client address's `verify:` bucket a transcript of `packets` packets sent in `bytes`
 * bytes costs: one, and one more per 32 packets and per 128 KiB, so that the bucket bounds the work a
 * client makes the relay do, not its number of requests (a maximal transcript, 386 packets in 4 MiB,
 * costs about 40 times a small one; the limiter caps a cost at its burst).
 */
export function verifyCost(packets: number, bytes: number): number {
  return 1 + Math.floor(packets / PACKETS_PER_TOKEN) + Math.floor(bytes / BYTES_PER_TOKEN);
}

/**
 * About how many characters a transcript's packets take: a packet's fixed members, and what varies,
 * the text of its output (a reveal's, up to 65,536 characters).
 */
function transcriptChars(packets: readonly AnyPacket[]): number {
  let chars = 0;
  for (const p of packets) chars += 512 + (p.type === 'reveal' ? p.body.output.length : 0);
  return chars;
}

/** The members a `POST /v1/verify` body holding a transcript may have. */
const WRAPPED_MEMBERS: ReadonlySet<string> = new Set([
  'transcript',
  'expectedVerdictDigest',
  'expectedRoot',
  'reembedded',
]);
const WRAPPED_SHAPE = '{transcript, expectedVerdictDigest?, expectedRoot?, reembedded?}';

/**
 * A body's `reembedded`: the re-embedding claims of the verdict being checked (its `verdict.reembedded`,
 * consensus/verdict.ts step 8), as a reveal id -> bits map; absent or null is none.
 */
function claimsOf(raw: Record<string, unknown>): Map<string, string> | undefined {
  const v = raw['reembedded'];
  if (v === undefined || v === null) return undefined;
  const parsed = z.array(ReembeddingClaimSchema).max(256).safeParse(v);
  if (!parsed.success) {
    throw edgeError(400, 'INVALID_INPUT', "reembedded must be a verdict's re-embedding claims", {
      issues: parsed.error.issues
        .slice(0, 8)
        .map((i) => ({ path: ['reembedded', ...i.path].join('.'), message: i.message })),
    });
  }
  return claimedReembeddings({ reembedded: parsed.data });
}

/**
 * A body `{transcript, expectedVerdictDigest?, expectedRoot?, reembedded?}`: anything else in it is 400 INVALID_INPUT,
 * not passed over (a relay's whole `GET /v1/verify/:id` answer, whose `verdictDigest` would otherwise go
 * unchecked, says which members to send instead), and so is a transcript that is null.
 */
function checkWrappedBody(raw: Record<string, unknown>): void {
  const unknown = Object.keys(raw).filter((k) => !WRAPPED_MEMBERS.has(k));
  if (unknown.length > 0) {
    throw edgeError(
      400,
      'INVALID_INPUT',
      `unknown member${unknown.length === 1 ? '' : 's'} ${unknown.slice(0, 8).join(', ')}: the body is ${WRAPPED_SHAPE}`,
      { issues: unknown.slice(0, 8).map((path) => ({ path, message: 'unknown member' })) },
      "to check a relay's GET /v1/verify/:id answer, send {transcript, expectedVerdictDigest: its verdictDigest, expectedRoot: its transcriptRoot, reembedded: its verdict.reembedded}, or run synod-verify on it",
    );
  }
  if (
    raw['transcript'] === null ||
    typeof raw['transcript'] !== 'object' ||
    Array.isArray(raw['transcript'])
  ) {
    throw edgeError(400, 'INVALID_INPUT', 'transcript must be a transcript {v, requestId, packets}', {
      issues: [{ path: 'transcript', message: 'expected an object' }],
    });
  }
}

/**
 * An expected digest of a body: 64 hex digits, in any case, `0x` or not (as a chain event shows it), as
 * lowercase hex; null or absent is none; anything else 400 INVALID_INPUT.
 */
function expectedDigest(raw: Record<string, unknown>, name: string): string | undefined {
  const v = raw[name];
  if (v === undefined || v === null) return undefined;
  const hex = typeof v === 'string' ? v.toLowerCase().replace(/^0x/, '') : '';
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw edgeError(400, 'INVALID_INPUT', `${name} must be 64 hex digits (0x optional)`, {
      issues: [{ path: name, message: 'expected 64 hex digits' }],
    });
  }
  return hex;
}

/**
 * The public verifier. `POST /v1/verify` takes `{ transcript, expectedVerdictDigest?, expectedRoot?,
 * reembedded? }` (or a bare transcript; `reembedded`: the checked verdict's re-embedding claims, taken as
 * the re-embedded bits of the recomputation) and recomputes every signature, commitment and the consensus: 200 with the
 * verdict when everything holds, 422 with the precise reasons when it does not. `GET /v1/verify/:id`
 * re-verifies a stored request against the verdict the coordinator published; its answer carries the
 * published `verdictDigest` and `transcriptRoot` either way (on a 422, beside the reasons they fail);
 * the published verdict's re-embedding claims are the recomputation's re-embedded bits (their truth is
 * checked by re-embedding: `synod-verify --reembed`).
 */
export function mountVerify(app: Hono, deps: EdgeDeps): void {
  // Both series from the start, at 0 (a series born at its first increment hides it from increase()).
  for (const ok of ['true', 'false'])
    deps.metrics.inc('synod_verify_total', 'Transcripts verified', { ok }, 0);
  app.post('/v1/verify', async (c) => {
    // One token before the body is read; the rest of its cost (verifyCost) as soon as it is known: its
    // bytes before they are parsed, its packets before they are checked.
    const bucket = `verify:${deps.clientAddress(c)}`;
    const charge = (tokens: number) => {
      const wait = tokens > 0 ? deps.limiter.take(bucket, tokens) : 0;
      if (wait > 0) throw rateLimitedError(wait);
    };
    charge(1);
    const bytes = await readBody(c, deps.config.verifyBodyLimit, bodyGuard(c, deps));
    charge(verifyCost(0, bytes.byteLength) - 1);
    const raw = parseJson(bytes, { uniqueNames: true }) as Record<string, unknown> | null;
    const wrapped = raw !== null && typeof raw === 'object' && 'transcript' in raw;
    // Neither shape: said as such, not as a transcript whose members are all wrong.
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || (!wrapped && !('packets' in raw))) {
      throw edgeError(
        400,
        'INVALID_INPUT',
        `no transcript: the body is ${WRAPPED_SHAPE} or a bare transcript {v, requestId, packets}`,
        { issues: [{ path: 'transcript', message: 'required' }] },
        "GET /v1/verify/:id answers a stored request's transcript (its `transcript` member)",
      );
    }
    if (wrapped) checkWrappedBody(raw);
    const transcript = wrapped ? raw['transcript'] : raw;
    const packets = (transcript as { packets?: unknown } | null)?.packets;
    charge(verifyCost(Array.isArray(packets) ? packets.length : 0, 0) - 1);
    const expectedVerdictDigest = wrapped ? expectedDigest(raw, 'expectedVerdictDigest') : undefined;
    const expectedRoot = wrapped ? expectedDigest(raw, 'expectedRoot') : undefined;
    const reembedded = wrapped ? claimsOf(raw) : undefined;
    const check = await verifyTranscript(transcript, {
      ...(expectedVerdictDigest === undefined ? {} : { expectedVerdictDigest }),
      ...(expectedRoot === undefined ? {} : { expectedRoot }),
      ...(reembedded === undefined ? {} : { reembedded }),
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

  // A stored transcript can be megabytes (reveals from anyone on the network): past the read's one
  // token, it is charged to the client address's `read:` bucket as a posted one is (see HeavyReads).
  const heavy = new HeavyReads(deps.limiter);
  app.get('/v1/verify/:id', limitReads(deps), async (c) => {
    const id = requestIdParam(c);
    const bucket = () => `read:${deps.clientAddress(c)}`;
    const charged = heavy.before(bucket, id);
    const d = await deps.store.getRequest(id);
    if (!d) {
      if (await deps.intake.queued(id)) {
        throw edgeError(409, 'NO_VERDICT', `request ${id} has no verdict yet (status queued)`, {
          status: 'queued',
        });
      }
      // As GET /v1/inference/:id says it: a chain request read from the chain and never run is named so,
      // with what the chain holds of it.
      throw await notFound(deps, id);
    }
    const packets = await deps.store.transcriptPackets(id);
    if (!packets || !d.verdict) {
      const final = TERMINAL.has(d.status);
      // Why it has none (its error, such as QUORUM_NOT_MET) and the signed request packet, whatever the
      // reason; a request the nodes declined also with their signed declines, which show why, for an
      // auditor to check (synod-verify --chain does); one sealed that ended without a verdict also with
      // its transcript, so that whether its members answered can be checked.
      const declined =
        d.status === 'expired' && d.error === 'DECLINED' ? { declines: d.declines.map((x) => x.packet) } : {};
      const sealed = packets && final ? { transcript: buildTranscript(packets) } : {};
      if (packets && final) {
        heavy.after(bucket, id, verifyCost(packets.length, transcriptChars(packets)) - 1, charged);
      }
      throw edgeError(
        409,
        'NO_VERDICT',
        `request ${id} has no verdict${final ? '' : ' yet'} (status ${d.status})`,
        {
          status: d.status,
          ...(d.error ? { error: d.error } : {}),
          request: d.request,
          ...declined,
          ...sealed,
        },
      );
    }
    const published = d.verdict.packet.body;
    // The nodes' signed attestations of the verdict, as received: not part of the transcript, but anyone
    // can check their signatures and what they attest (synod-verify does).
    const attestations = d.attestations.map((a) => a.packet);
    const transcript = buildTranscript(packets);
    heavy.after(bucket, id, verifyCost(packets.length, transcriptChars(packets)) - 1, charged);
    const check = await verifyTranscript(transcript, {
      expectedVerdictDigest: published.verdictDigest,
      expectedRoot: published.transcriptRoot,
      reembedded: claimedReembeddings(published.verdict),
    });
    if (check.ok) {
      return c.json({
        ok: true,
        requestId: id,
        verdictDigest: check.verdictDigest,
        transcriptRoot: check.root,
        verdict: check.verdict,
        transcript,
        verdictPacket: d.verdict.packet,
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
        verdictPacket: d.verdict.packet,
        attestations,
      },
      422,
    );
  });
}
