import { onClaims } from './attest.ts';
import { checkNow, checkState, driverError, newBaseState, takeTimer } from './common.ts';
import {
  copyObserverFields,
  emptyObserverFields,
  type ObserverConfig,
  type ObserverHooks,
  type ObserverState,
  observerPacket,
  observerRestored,
  observerTimer,
  startObserver,
} from './observer.ts';
import type { Effect, FollowerEvent, Transition } from './types.ts';

/**
 * The follower (a requester watching its request, a browser, a verifier): runs no model, tracks the
 * request through pending -> committed -> sealed -> revealing -> verdict (or expired) from the packets it
 * sees, and checks the verdict by recomputing it; with `attest: true` it publishes an attestation when
 * the recomputation matches. Read its progress with `lifecycleStatus(state)`.
 */
export type FollowerConfig = ObserverConfig;

export interface FollowerState extends ObserverState {
  role: 'follower';
}

const hooks: ObserverHooks<FollowerState> = { onRequest() {}, onSeal() {} };

/** A follower of `requestId`, created before or when its request packet is seen. */
export function initFollower(
  config: FollowerConfig,
  input: { now: number; self: string; requestId: string },
): Transition<FollowerState> {
  checkNow(input.now);
  const s: FollowerState = {
    ...newBaseState('follower', input.self, input.requestId),
    ...emptyObserverFields(),
  };
  const fx: Effect[] = [];
  startObserver(s, fx, config, input.now);
  return { state: s, effects: fx };
}

export function stepFollower(
  config: FollowerConfig,
  state: FollowerState,
  event: FollowerEvent,
): Transition<FollowerState> {
  checkState(state, 'follower');
  checkNow(event.now);
  const s = copyObserverFields(state);
  const fx: Effect[] = [];
  switch (event.kind) {
    case 'packet':
      observerPacket(config, hooks, s, fx, event.packet, event.now);
      break;
    case 'timer':
      if (s.outcome === null && takeTimer(s, event.name)) observerTimer(s, fx, event.name, event.now);
      break;
    case 'restored':
      observerRestored(config, s, fx, event.now, (name) => observerTimer(s, fx, name, event.now));
      break;
    case 'claims-embedded':
    case 'claims-not-embedded':
      onClaims(config, s, fx, event);
      break;
    default:
      driverError(`a follower does not take "${(event as { kind: string }).kind}" events`);
  }
  return { state: s, effects: fx };
}
