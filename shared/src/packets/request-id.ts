import { toHex } from '../encoding/bytes.ts';
import { canonicalBytes } from '../encoding/canonical.ts';
import { taggedHash } from '../encoding/hash.ts';
import type { RequestBody } from './schemas.ts';

/**
 * requestId of a request body.
 * - chain requests: `<chainId>:<contract>:<requestNo>` from the origin, so one on-chain request maps to
 *   exactly one network request;
 * - all others: hex sha256("synod/v1/request-id" ‖ 0x00 ‖ JCS(body without requestId)); the body has a
 *   random 16-byte nonce, so two identical prompts get different ids.
 */
export function deriveRequestId(body: Omit<RequestBody, 'requestId'> & { requestId?: string }): string {
  if (body.origin.kind === 'chain') {
    return `${body.origin.chainId}:${body.origin.contract}:${body.origin.requestNo}`;
  }
  const { requestId: _ignored, ...content } = body;
  return toHex(taggedHash('request-id', canonicalBytes(content)));
}
