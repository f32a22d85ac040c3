import {
  concatBytes,
  fromHex,
  isNodeId,
  lengthPrefixed,
  sha256,
  taggedHash,
  utf8,
  verifySignature,
} from '@synod/shared';

/**
 * Signed HTTP requests, the keyless way to authenticate: a caller with a Synod node key sends
 *   x-synod-node: <node id>, x-synod-timestamp: <ms since epoch>, x-synod-signature: <hex>
 * where the signature is Ed25519 over
 *   sha256("synod/v1/http-request" ‖ 0x00 ‖ lp(method) ‖ lp(path and query) ‖ lp(timestamp) ‖ lp(sha256(body))
 *          [‖ lp(Idempotency-Key), when the request has one])
 * The timestamp must be within the skew window, which bounds replay; within it, the relay keys a signed
 * request without an Idempotency-Key by its signature, so a replay answers the first request instead of
 * making (and charging) another. The Idempotency-Key is signed too: were it not, a replay with a key of
 * the replayer's choosing would be a new request, charged to the signer.
 */
export const SIGNED_REQUEST_SKEW_MS = 120_000;

export function signedRequestDigest(
  method: string,
  pathAndQuery: string,
  timestamp: string,
  body: Uint8Array,
  idempotencyKey?: string,
): Uint8Array {
  const parts = [
    lengthPrefixed(utf8(method.toUpperCase())),
    lengthPrefixed(utf8(pathAndQuery)),
    lengthPrefixed(utf8(timestamp)),
    lengthPrefixed(sha256(body)),
  ];
  if (idempotencyKey !== undefined) parts.push(lengthPrefixed(utf8(idempotencyKey)));
  return taggedHash('http-request', ...parts);
}

export type SignedRequestCheck =
  | { ok: true; nodeId: string }
  | { ok: false; reason: 'MISSING' | 'MALFORMED' | 'STALE' | 'BAD_SIGNATURE' };

export async function checkSignedRequest(input: {
  method: string;
  pathAndQuery: string;
  body: Uint8Array;
  headers: {
    node?: string | undefined;
    timestamp?: string | undefined;
    signature?: string | undefined;
    idempotencyKey?: string | undefined;
  };
  now: number;
}): Promise<SignedRequestCheck> {
  const { node, timestamp, signature } = input.headers;
  if (!node && !timestamp && !signature) return { ok: false, reason: 'MISSING' };
  if (
    !node ||
    !timestamp ||
    !signature ||
    !isNodeId(node) ||
    !/^\d{1,16}$/.test(timestamp) ||
    !/^[0-9a-f]{128}$/.test(signature)
  ) {
    return { ok: false, reason: 'MALFORMED' };
  }
  if (Math.abs(Number(timestamp) - input.now) > SIGNED_REQUEST_SKEW_MS) return { ok: false, reason: 'STALE' };
  const digest = signedRequestDigest(
    input.method,
    input.pathAndQuery,
    timestamp,
    input.body,
    input.headers.idempotencyKey,
  );
  const ok = await verifySignature(node, concatBytes(digest), fromHex(signature));
  return ok ? { ok: true, nodeId: node } : { ok: false, reason: 'BAD_SIGNATURE' };
}
