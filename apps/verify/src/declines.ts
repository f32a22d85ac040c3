/**
 * The nodes' declines of a request (signed `decline` packets, which a relay's `GET /v1/verify/<id>` of a
 * request it ended `DECLINED` returns beside the request packet): each one's signature, request packet,
 * model and counts are checked here. What they show: how many distinct nodes signed that the prompt
 * does not fit their model's context, and which of the request's models they named. Whether the relay
 * counted them toward the quorum (its seat policy: whom it holds proven) is its own record, not checked.
 */
import { packetId } from '@synod/shared';
import { distinctSigned, packetOf, signatureHolds } from './signed-packets.ts';

export interface DeclineCheck {
  /** The request packet the declines name: its id, quorum and accepted models (null: not a request). */
  request: { id: string; requestId: string; quorum: number; acceptedModels: string[] } | null;
  /** Why the request packet given is not one, if it is not. */
  requestProblem: string | null;
  /** Distinct nodes whose decline verifies and names that request packet. */
  nodes: number;
  /** The accepted models those declines name. */
  models: string[];
  /** The largest context and the prompt's tokens under it, as the declines say. */
  closest: { model: string; promptTokens: number; contextTokens: number } | null;
  /** Declines that do not verify, or do not belong here, with why. */
  invalid: { from: string; why: string }[];
}

export async function checkDeclines(
  request: unknown,
  given: readonly unknown[],
  requestId: string,
): Promise<DeclineCheck> {
  const out: DeclineCheck = {
    request: null,
    requestProblem: null,
    nodes: 0,
    models: [],
    closest: null,
    invalid: [],
  };
  try {
    const read = packetOf(request, 'request', 'a request');
    if ('why' in read) throw new Error(read.why);
    const r = read.packet;
    if (r.body.requestId !== requestId) throw new Error(`the request packet of ${r.body.requestId}`);
    if (!(await signatureHolds(r))) throw new Error("the request packet's signature does not verify");
    out.request = {
      id: packetId(r),
      requestId,
      quorum: r.body.frame.quorum,
      acceptedModels: r.body.acceptedModels,
    };
  } catch (e) {
    out.requestProblem = (e as Error).message;
    return out;
  }
  const named = out.request;
  const { valid, invalid } = await distinctSigned(given, 'decline', (p) =>
    p.body.requestId !== requestId || p.body.requestPacketId !== named.id
      ? 'it declines another request packet'
      : named.acceptedModels.includes(p.body.model.id)
        ? null
        : `the request does not accept model ${p.body.model.id}`,
  );
  out.invalid = invalid;
  out.nodes = valid.length;
  const models = new Set<string>();
  for (const p of valid) {
    models.add(p.body.model.id);
    if (out.closest === null || p.body.contextTokens > out.closest.contextTokens) {
      out.closest = {
        model: p.body.model.id,
        promptTokens: p.body.promptTokens,
        contextTokens: p.body.contextTokens,
      };
    }
  }
  out.models = [...models].sort();
  return out;
}
