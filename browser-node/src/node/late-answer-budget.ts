import { TtlSet } from '../p2p/intake.ts';

/** A coordinator's late answers (`lateAnswer`): at most one a request in this long... */
export const LATE_ANSWER_GAP_MS = 5_000;
/**
 * ...and at most this many in `LATE_ANSWER_WINDOW_MS` in all to sealed members: a member's late
 * packets (a node back on the network that missed the seal or the verdict), for every request that
 * lingers, cost a bounded share of what the coordinator publishes.
 */
export const LATE_ANSWERS_PER_WINDOW = 64;
export const LATE_ANSWER_WINDOW_MS = 10_000;
/** The members' packets one late answer forwards, at most (their encoded bytes). */
export const LATE_ANSWER_FORWARD_BYTES = 256 * 1024;
/** ...and all late answers to members publish in `LATE_ANSWER_WINDOW_MS` (the seal and verdict too). */
export const LATE_ANSWER_BYTES_PER_WINDOW = 4 * 1024 * 1024;
/**
 * Late answers to keys the seal does not list (the seal and the verdict only: `lateAnswer`), in a window
 * of their own: a commit is free to make under a fresh key, and a flood of them must not use up what
 * the members get.
 */
export const LATE_ANSWERS_TO_NON_MEMBERS_PER_WINDOW = 64;
export const LATE_ANSWER_NON_MEMBER_BYTES_PER_WINDOW = 1024 * 1024;

/** Who a late answer goes to: a sealed member of its request, or any other key. */
export type LateAnswerTo = 'member' | 'non-member';

/** `SynodNodeOptions.lateAnswers`: each field defaults to the constant of its name above. */
export interface LateAnswerOptions {
  /** One answer a request (to members, and to non-members) in this long: `LATE_ANSWER_GAP_MS`. */
  gapMs?: number;
  /** Answers to members in `windowMs`: `LATE_ANSWERS_PER_WINDOW`, `LATE_ANSWER_WINDOW_MS`. */
  max?: number;
  windowMs?: number;
  /** Members' packets one answer forwards, in bytes: `LATE_ANSWER_FORWARD_BYTES`. */
  forwardBytes?: number;
  /** Bytes all answers to members publish in `windowMs`: `LATE_ANSWER_BYTES_PER_WINDOW`. */
  bytesPerWindow?: number;
  /**
   * Answers to non-members, and the bytes they publish, in `windowMs` (a window of their own):
   * `LATE_ANSWERS_TO_NON_MEMBERS_PER_WINDOW`, `LATE_ANSWER_NON_MEMBER_BYTES_PER_WINDOW`.
   */
  nonMembers?: { max?: number; bytesPerWindow?: number };
}

interface Window {
  start: number;
  count: number;
  bytes: number;
}

/**
 * What a coordinator may still publish in late answers: for members and for non-members apart, one
 * answer a request every `gapMs`, and a count and bytes (everything the answer publishes: the seal and
 * the verdict signed again, the members' packets forwarded) in each `windowMs`.
 */
export class LateAnswerBudget {
  /** The members' packets one answer forwards, at most. */
  readonly forwardBytes: number;
  readonly #windowMs: number;
  readonly #limits: Record<LateAnswerTo, { max: number; bytesPerWindow: number }>;
  readonly #answered: Record<LateAnswerTo, TtlSet<true>>;
  readonly #windows: Record<LateAnswerTo, Window> = {
    member: { start: Number.NEGATIVE_INFINITY, count: 0, bytes: 0 },
    'non-member': { start: Number.NEGATIVE_INFINITY, count: 0, bytes: 0 },
  };

  constructor(o: LateAnswerOptions = {}) {
    const gapMs = o.gapMs ?? LATE_ANSWER_GAP_MS;
    this.forwardBytes = o.forwardBytes ?? LATE_ANSWER_FORWARD_BYTES;
    this.#windowMs = o.windowMs ?? LATE_ANSWER_WINDOW_MS;
    this.#limits = {
      member: {
        max: o.max ?? LATE_ANSWERS_PER_WINDOW,
        bytesPerWindow: o.bytesPerWindow ?? LATE_ANSWER_BYTES_PER_WINDOW,
      },
      'non-member': {
        max: o.nonMembers?.max ?? LATE_ANSWERS_TO_NON_MEMBERS_PER_WINDOW,
        bytesPerWindow: o.nonMembers?.bytesPerWindow ?? LATE_ANSWER_NON_MEMBER_BYTES_PER_WINDOW,
      },
    };
    this.#answered = { member: new TtlSet(4_096, gapMs), 'non-member': new TtlSet(4_096, gapMs) };
  }

  /** Whether an answer about `requestId` went to `to` in the last `gapMs` (this one is then not sent). */
  answeredLately(requestId: string, to: LateAnswerTo, now: number): boolean {
    return this.#answered[to].get(requestId, now) !== undefined;
  }

  /** Whether `to`'s window has no room for another answer whatever its size (it need not be made). */
  full(to: LateAnswerTo, now: number): boolean {
    return this.#window(to, now).count >= this.#limits[to].max;
  }

  /**
   * Room for an answer of `bytes` about `requestId` to `to`: taken (the request answered for `gapMs`) and
   * true, or false when it would pass its window's count or bytes (the answer is dropped).
   */
  take(requestId: string, to: LateAnswerTo, bytes: number, now: number): boolean {
    const window = this.#window(to, now);
    const limits = this.#limits[to];
    if (window.count >= limits.max || window.bytes + bytes > limits.bytesPerWindow) return false;
    window.count++;
    window.bytes += bytes;
    this.#answered[to].set(requestId, true, now);
    return true;
  }

  /** `to`'s window as of `now`: a new one once `windowMs` passed since the last began. */
  #window(to: LateAnswerTo, now: number): Window {
    let window = this.#windows[to];
    if (now - window.start >= this.#windowMs) {
      window = { start: now, count: 0, bytes: 0 };
      this.#windows[to] = window;
    }
    return window;
  }
}
