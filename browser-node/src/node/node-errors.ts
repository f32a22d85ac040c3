import { CodedError } from '@synod/shared';

/**
 * Errors of a `SynodNode`'s own calls (not the protocol's, which are `SynodError`s): each with a stable
 * code, for the relay and apps driving a node.
 *
 *   NODE_CLOSED              the node was closed: it takes no more requests
 *   REQUEST_ALREADY_KNOWN    `submit` of a request this node already hosts in another role (it follows it,
 *                            or serves it as a node): it cannot coordinate it too
 *   REQUEST_NOT_PUBLISHED    `submit`'s first step failed (its state could not be written, past its
 *                            retries): the request was not published and nothing of it goes on running;
 *                            the same body may be submitted again
 */
export type NodeErrorCode = 'NODE_CLOSED' | 'REQUEST_ALREADY_KNOWN' | 'REQUEST_NOT_PUBLISHED';

export class NodeError extends CodedError<NodeErrorCode> {
  override readonly name = 'NodeError';
}
