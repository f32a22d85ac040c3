import { toHex, utf8 } from '../encoding/bytes.ts';
import { canonicalJson } from '../encoding/canonical.ts';
import { taggedHash } from '../encoding/hash.ts';
import type { RequestBody } from './schemas.ts';

type RequestContent = Omit<RequestBody, 'requestId'> & { requestId?: string };

/**
 * requestId of a request body.
 * - chain requests: `<chainId>:<contract>:<requestNo>` from the origin, so one on-chain request maps to
 *   exactly one network request;
 * - all others: hex sha256("synod/v1/request-id" ‖ 0x00 ‖ JCS(body without requestId)); the body has a
 *   random 16-byte nonce, so two identical prompts get different ids.
 */
export function deriveRequestId(body: RequestContent): string {
  if (body.origin.kind === 'chain') return chainRequestId(body.origin);
  const { requestId: _ignored, ...content } = body;
  return contentRequestId(canonicalJson(content));
}

/** The id of a non-chain request from the canonical JSON of its body without `requestId`. */
function contentRequestId(json: string): string {
  return toHex(taggedHash('request-id', utf8(json)));
}

/**
 * A request body completed with its id (`deriveRequestId`), and the body's canonical JSON text
 * (RFC 8785, as `canonicalJson(body)`), from one canonicalization: the relay hashes the text for the
 * id and stores the same text.
 */
export function withRequestId(input: Omit<RequestBody, 'requestId'>): { body: RequestBody; json: string } {
  // A whole body passes the type too: its old `requestId` is no part of the content (as in deriveRequestId).
  let content = input;
  if ((input as RequestContent).requestId !== undefined) {
    const { requestId: _ignored, ...rest } = input as RequestContent;
    content = rest;
  }
  if (content.origin.kind === 'chain') {
    const body = { ...content, requestId: chainRequestId(content.origin) } as RequestBody;
    return { body, json: canonicalJson(body) };
  }
  const text = canonicalJson(content);
  const requestId = contentRequestId(text);
  const body = { ...content, requestId } as RequestBody;
  // `requestId` sorts after every other member of a request body, so it is the text's last member.
  const last = Object.keys(content).every((k) => k < 'requestId');
  if (!last) return { body, json: canonicalJson(body) };
  const member = `"requestId":"${requestId}"}`;
  return { body, json: text === '{}' ? `{${member}` : `${text.slice(0, -1)},${member}` };
}

function chainRequestId(origin: Extract<RequestBody['origin'], { kind: 'chain' }>): string {
  return `${origin.chainId}:${origin.contract}:${origin.requestNo}`;
}
