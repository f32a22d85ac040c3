/** For tests only: a coordinator started on a request, its signed request fed back, and a way to feed it. */
import { expect } from 'bun:test';
import type { Frame } from '../frame/frame.ts';
import type { NodeKey } from '../identity/node-key.ts';
import type { AnyPacket, Packet, RequestBody } from '../packets/index.ts';
import {
  type CoordinatorConfig,
  type CoordinatorState,
  startCoordinator,
  stepCoordinator,
} from './coordinator.ts';
import { makeRequest, signPublishes, T0, testKey } from './sim.test-helpers.ts';
import type { Effect } from './types.ts';

export interface CoordinatorCtx {
  ck: NodeKey;
  /** Seven node keys, `node0` to `node6`. */
  keys: NodeKey[];
  request: RequestBody;
  requestPacket: Packet<'request'>;
  config: CoordinatorConfig;
  state: CoordinatorState;
}

/** A coordinator of a request made with `frame` (labelled `label`), at T0, its request packet back. */
export async function startedCoordinator(
  frame: Partial<Omit<Frame, 'embeddingModel'>> = {},
  config: CoordinatorConfig = {},
  label = 'coordinator-test',
  request: RequestBody = makeRequest({ frame, label }),
): Promise<CoordinatorCtx> {
  const ck = await testKey('coordinator');
  const keys = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((i) => testKey(`node${i}`)));
  const t = startCoordinator(config, { now: T0, self: ck.nodeId, request });
  const [requestPacket] = (await signPublishes(ck, t.effects)) as [Packet<'request'>];
  const back = stepCoordinator(config, t.state, { kind: 'packet', now: T0, packet: requestPacket });
  expect(back.effects).toEqual([]);
  return { ck, keys, request, requestPacket, config, state: back.state };
}

/** Feed a packet to the coordinator at `now`; returns the effects. */
export function feedCoordinator(ctx: CoordinatorCtx, packet: AnyPacket, now: number): Effect[] {
  const t = stepCoordinator(ctx.config, ctx.state, { kind: 'packet', now, packet });
  ctx.state = t.state;
  return t.effects;
}
