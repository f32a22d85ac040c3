import type { ObserverConfig } from '@synod/shared';

/**
 * Which coordinators a node serves. A request's id covers its content, not its author: anyone who hears a
 * request packet can sign the same body as its own and publish it. A node that takes the first copy it
 * hears as the request would then commit to that key, reveal to its seal and refuse the real
 * coordinator's, and the request fail with the node counted as withholding. A node told which
 * coordinators it serves (the relays it works for: `synod node --coordinators`, the web app's relay)
 * refuses every other author's copy (NOT_COORDINATOR) and waits for theirs. No list: any author, the
 * open network's default.
 */
export function coordinatorTrust(ids: readonly string[]): Pick<ObserverConfig, 'trustsCoordinator'> {
  if (ids.length === 0) return {};
  const trusted = new Set(ids.map((id) => id.toLowerCase()));
  return { trustsCoordinator: (nodeId) => trusted.has(nodeId) };
}

/** A node id as flags and configs give it: 64 hex digits (either case), made lowercase. */
export function parseCoordinatorIds(text: string): string[] | { error: string } {
  const ids = text.split(',').map((s) => s.trim());
  if (text.trim() === '') return [];
  const bad = ids.find((id) => !/^[0-9a-fA-F]{64}$/.test(id));
  if (bad !== undefined) {
    return { error: `node ids are 64 hex digits, comma-separated; got ${JSON.stringify(bad.slice(0, 80))}` };
  }
  return [...new Set(ids.map((id) => id.toLowerCase()))];
}
