import { synodOracleAbi } from '@synod/contracts/abi';
import {
  ANSWER_TOO_LARGE,
  fulfilGasLimit,
  leastFulfilGas,
  MAX_TRANSACTION_GAS,
} from '@synod/contracts/settlement-gas';
import { escapeUnshown } from '@synod/shared';
import type { ChainRequestRow } from '@synod/shared/history';
import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  decodeEventLog,
  decodeFunctionData,
  encodeFunctionData,
  getAddress,
  type Hex,
  HttpRequestError,
  isAddressEqual,
  keccak256,
  type Log,
  type PublicClient,
  parseEventLogs,
  TimeoutError,
  type Transaction,
  TransactionReceiptNotFoundError,
  type Transport,
  type WalletClient,
} from 'viem';
import { utcDay } from '../http/auth.ts';
import { buildRequest, type RequestDefaults } from '../inference-input.ts';
import { LogSpells } from '../log-spells.ts';
import type { Admission, AdmissionOutcome } from '../store/intake-store.ts';
import { type BridgeBalance, BridgeBalanceMonitor } from './bridge-balance.ts';
import {
  blockGone,
  bridgeMismatch,
  ChainBridgeError,
  cannotPay,
  codeOf,
  describe,
  outOfGas,
  refusedByRpc,
  revertName,
  rpcFailed,
} from './chain-errors.ts';
import {
  type ChainSettlement,
  type ChainStore,
  type OracleRef,
  type PendingKey,
  pendingAfter,
  pendingKeyOf,
} from './chain-store.ts';
import { CursorCheckpoints } from './cursor-checkpoints.ts';
import { type ReadResume, withinBudget } from './events-budget.ts';
import { OracleEventReader } from './oracle-event-reader.ts';
import {
  chainOrigin,
  chainRequestIdOf,
  decodedAsAsked,
  type FoundView,
  type OracleRequestEvent,
  oracleRequestEvent,
  oracleRequestInput,
  refundReason,
  type Settlement,
  sameRequest,
  settlementFor,
} from './oracle-request.ts';
import { chainErrorText, redactRpcUrl } from './rpc-errors.ts';

export interface ChainWatcherOptions {
  /** Reads: the chain's JSON-RPC. */
  client: PublicClient;
  /** The bridge account (the oracle's `bridge`): signs `fulfill` and `refund`. */
  wallet: WalletClient<Transport, Chain, Account>;
  oracle: Address;
  /** The chain the oracle is on; checked against the RPC on start. */
  chainId: number;
  store: ChainStore;
  /** The relay's view of a request (history or admission log), or null. */
  lookup(requestId: string): Promise<FoundView | null>;
  /** Durably admit a request (the relay's group commit). */
  admit(a: Admission): Promise<AdmissionOutcome>;
  /** New requests are in the admission log (wakes the dispatcher). */
  admitted?(requestIds: readonly string[]): Promise<void> | void;
  /** The relay's request defaults now (served models, embedders). */
  defaults(): Promise<RequestDefaults>;
  /** Blocks an event must be under before it is acted on. Default 2. */
  confirmations?: number;
  /** First block to read when no cursor is stored yet (the oracle's deployment block). Default 0. */
  fromBlock?: bigint;
  /**
   * Most blocks per `eth_getLogs`. Default 2,000. An RPC that refuses a range (many providers take
   * fewer blocks, or fewer results, per call) is asked again with half as many blocks, and the watcher
   * keeps the narrower range from then on.
   */
  maxBlockRange?: bigint;
  /**
   * Most block ranges read in one pass. Default 20. A watcher catching up on a long backlog (a relay
   * down for days) settles what it has between passes instead of after the whole backlog, and a pass
   * stays within a bounded number of RPC calls (a Workers cron run has a budget of subrequests).
   */
  maxRangesPerPass?: number;
  /**
   * Most events taken in one pass (at least one). Default: no bound. A range that holds more ends, for
   * this pass, at the last event that fits, in chain order, inside its block if the block holds more
   * (the cursor then keeps that event's log index, and the next pass reads on in the same block, past
   * it). So a pass of a Workers cron run stays within its budget of subrequests (each event costs a few:
   * its row, its lookup, its admission, the oracle's record of it) however busy the oracle, even when one
   * block holds more events than the budget, and no event is taken, admitted or charged again after a
   * run that ran out of budget halfway.
   */
  maxEventsPerPass?: number;
  /** Blocks read again below the cursor when the cursor's block was replaced. Default 64. */
  reorgWindow?: bigint;
  /** Between passes. Default 1,000 ms. */
  pollMs?: number;
  /** Daily admissions charged to one oracle (its caller id `chain:<chainId>:<contract>`). Default 1e6. */
  quotaPerDay?: number;
  /**
   * A settlement still in the mempool this long after it was sent is sent again with the same nonce
   * and `feeBumpPercent` higher fees (at least the chain's current ones). Default 60,000 ms.
   */
  replaceAfterMs?: number;
  /** Default 25 (replacements need at least 10% more on most nodes). */
  feeBumpPercent?: number;
  /**
   * Most gas the bridge spends on one `fulfill`. A fulfil that needs more (its answer too large for it),
   * or more than the chain's block gas limit, is refunded instead (`ANSWER_TOO_LARGE`): it could never be
   * mined, and the requester would wait for the deadline. Default `MAX_TRANSACTION_GAS` (2^24, the
   * per-transaction cap of EIP-7825): a 64 Ki-character answer of 4-byte characters takes about 11M.
   */
  maxSettlementGas?: bigint;
  /**
   * Below this balance (wei) the bridge account is reported low: a warning in the log, `bridgeLow` in
   * the stats, and `onBalance` (see bridge-balance.ts). Default: what `DEFAULT_RESERVE_SETTLEMENTS` settlements of
   * `SETTLEMENT_GAS_BUDGET` gas cost at the chain's gas price when checked.
   */
  minBridgeBalance?: bigint;
  /** Between two reads of the bridge balance (the first pass always reads it). Default 60,000 ms. */
  balanceCheckMs?: number;
  /**
   * Between two reads of the oracle's `bridge()` while running (its owner may change it at any time;
   * `check` reads it on start, and a settlement reverted `NotBridge` reads it at once). Default 30,000 ms.
   */
  bridgeCheckMs?: number;
  /**
   * Settlements are checked on chain every `settledCheckMs` until they are final (their block at or
   * below the chain's `finalized` block): one undone by a reorg deeper than `confirmations` is sent
   * again, and one the chain holds settled by another transaction is recorded as the chain has it.
   * The first pass always checks. Default 30,000 ms.
   */
  settledCheckMs?: number;
  /**
   * On a chain whose RPC names no `finalized` block, a settlement counts as final this long after it
   * was recorded. Default 1,200,000 ms (20 min, beyond Ethereum's finality).
   */
  assumeFinalAfterMs?: number;
  /** Told each time the bridge balance was read. */
  onBalance?(b: BridgeBalance): void;
  /** Told after each pass, failed or not, the watcher's stats then (`/metrics`). */
  onPass?(stats: ChainWatcherStats): void;
  now?: () => number;
  random?: (n: number) => Uint8Array;
  log?: (entry: Record<string, unknown>) => void;
}

export interface ChainWatcherStats {
  passes: number;
  events: number;
  admitted: number;
  fulfilled: number;
  refunded: number;
  reorgs: number;
  /** Settlements re-sent with higher fees. */
  replaced: number;
  /** Settlements found undone on chain by a reorg, and reopened to be sent again. */
  undone: number;
  /** Rows recorded again because the chain holds the request settled by another transaction. */
  resettled: number;
  /** Block ranges whose events were read again because the chain changed while they were read. */
  rereads: number;
  /** Settlements found final (no longer checked). */
  finalized: number;
  errors: number;
  /** `now()` at the end of the last pass that failed nowhere (no RPC error, no row failed); null before. */
  lastOkAt: number | null;
  /** The chain's head block at the last pass that read it; null before. */
  head: number | null;
  /**
   * The cursor's block: the last block whose events were read, all of them or (when a pass's budget of
   * events ended inside it) those up to the log index the cursor keeps; null before any was read.
   */
  cursor: number | null;
  /** The bridge balance at the last read (null before the first), in decimal wei: stats are JSON. */
  bridge: { address: Address; wei: string; minimumWei: string; low: boolean; at: number } | null;
  /**
   * While the oracle's `bridge()` is another account than this relay's (its owner changed it): both, and
   * since when (`now()`). Nothing that would revert is sent meanwhile (fulfils, refunds before their
   * deadline). Null while they are the same.
   */
  bridgeMismatch: { oracleBridge: Address; account: Address; since: number } | null;
}

type Defaulted =
  | 'confirmations'
  | 'fromBlock'
  | 'maxBlockRange'
  | 'maxRangesPerPass'
  | 'maxEventsPerPass'
  | 'reorgWindow'
  | 'pollMs'
  | 'quotaPerDay'
  | 'replaceAfterMs'
  | 'feeBumpPercent'
  | 'maxSettlementGas'
  | 'balanceCheckMs'
  | 'bridgeCheckMs'
  | 'assumeFinalAfterMs'
  | 'settledCheckMs';
type Resolved = Omit<ChainWatcherOptions, Defaulted | 'now' | 'random'> &
  Required<Pick<ChainWatcherOptions, Defaulted | 'now' | 'random'>>;

/** On-chain `Status` of SynodOracle's requests. */
const ON_CHAIN = { none: 0, pending: 1, fulfilled: 2, refunded: 3 } as const;

/** Pending rows read at a time by a settlement pass, which reads page after page until it has seen them all. */
const SETTLE_PAGE = 64;

/**
 * While another account is the oracle's bridge, the most rows whose settlement is held back that one pass
 * reads anything of on chain: at most this many are looked up (is the request settled?) in a settlement
 * check, going on at the next check after the last one looked up (from the oldest again once the end is
 * reached; a Workers cron run, a new watcher each time, starts from the oldest); and at most this many
 * refunds held back have their event read for its deadline, the oldest first (their deadlines come
 * first: one behind them is past its deadline only once they are). The rest cost no RPC call that pass,
 * so a pass's calls are bounded however many rows wait.
 */
export const HELD_LOOKUPS_PER_PASS = 8;

/**
 * The most lookups of settlement events (`#settlementEvent`: a request the oracle holds settled, its
 * event looked for from the request's block on, up to `maxRangesPerPass` ranges each) one pass makes; the
 * rows past them are looked at by a later pass. Each lookup resumes where the last one stopped (in memory:
 * a Workers cron run starts again from the request's block), so this bounds a pass's `eth_getLogs` calls
 * however many settled rows' events the node does not show.
 */
export const SETTLEMENT_SCANS_PER_PASS = 8;

/** A settled request's settlement whose lookup this pass could not afford (`SETTLEMENT_SCANS_PER_PASS`). */
const DEFERRED = 'deferred';

/** What recording a row as the chain holds it did: recorded, nothing to record (pending on chain), or deferred. */
type OnChainRecord = 'recorded' | 'unsettled' | typeof DEFERRED;

/** A watcher's counters before its first pass (all zero). */
export function initialChainWatcherStats(): Omit<ChainWatcherStats, 'bridge'> {
  return {
    passes: 0,
    events: 0,
    admitted: 0,
    fulfilled: 0,
    refunded: 0,
    reorgs: 0,
    replaced: 0,
    undone: 0,
    resettled: 0,
    rereads: 0,
    finalized: 0,
    errors: 0,
    lastOkAt: null,
    head: null,
    cursor: null,
    bridgeMismatch: null,
  };
}

/**
 * The chain bridge: reads SynodOracle's `LLMRequested` events once they are `confirmations` deep, turns
 * each into a network request (id `<chainId>:<oracle>:<requestNo>`, admitted like an HTTP request and
 * coordinated by this relay), and writes the outcome back exactly once: `fulfill` with the verdict's
 * winning output, verdict digest and transcript root, or `refund` with the stable reason code (input the
 * relay refuses, no consensus, expiry, or `ANSWER_TOO_LARGE`: a winning answer whose `fulfill` needs more
 * gas than the chain's block or `maxSettlementGas` allows). A request the oracle already holds settled
 * when its event is read (refunded by anyone after its deadline) is recorded so, never computed.
 *
 * Exactly once across restarts and reorgs: each event is recorded in `chain_requests` (keyed like the
 * contract keys it) after its admission, which is idempotent; the settling transaction is signed, its
 * hash claimed on the row, and only then broadcast, so a restart follows that transaction up instead of
 * sending another; the row becomes `fulfilled`/`refunded` once the transaction is confirmed; and the
 * contract refuses a second settlement in any case. When the block under the read cursor is replaced,
 * the last `reorgWindow` blocks are read again: rows whose event is gone become `reorged`, and go back to
 * `pending` when the event reappears. Every settlement names the question of the event it answers
 * (`questionHash`), and the contract refuses it for any other: a transaction signed for one question and
 * mined again after a reorg that gave its number to another one reverts instead of settling it.
 */
export class ChainWatcher {
  readonly #o: Resolved;
  readonly #ref: OracleRef;
  #timer: ReturnType<typeof setInterval> | undefined;
  #pass: Promise<void> | undefined;
  #stopped = false;
  #stats: Omit<ChainWatcherStats, 'bridge'> = initialChainWatcherStats();
  /** `now()` from which the next pass checks recent settlements on chain. */
  #nextSettledCheck = Number.NEGATIVE_INFINITY;
  /**
   * Whether this pass checks settlements on chain (`settledCheckMs`): rows whose settlement is held back
   * while another account is the oracle's bridge are then looked up on chain too (`#heldBack`).
   */
  #checkingSettled = false;
  /** This pass's budget of held-back rows looked up on chain (`HELD_LOOKUPS_PER_PASS`). */
  #heldLookupsLeft = HELD_LOOKUPS_PER_PASS;
  /** This pass's budget of held-back refunds whose event is read for its deadline (`HELD_LOOKUPS_PER_PASS`). */
  #deadlineReadsLeft = HELD_LOOKUPS_PER_PASS;
  /** This pass's budget of settlement-event lookups (`SETTLEMENT_SCANS_PER_PASS`). */
  #scansLeft = SETTLEMENT_SCANS_PER_PASS;
  /** The last held-back row looked up on chain: the next settlement check goes on after it. */
  #heldAfter: PendingKey | null = null;
  /** Whether this pass left held-back rows past `#heldAfter` not looked up, its lookups spent. */
  #heldLeft = false;
  readonly #balance: BridgeBalanceMonitor;
  /** `now()` from which the next pass reads the bridge balance. */
  #nextBalanceCheck = Number.NEGATIVE_INFINITY;
  /** `now()` from which the next pass reads the oracle's `bridge()`. */
  #nextBridgeCheck = Number.NEGATIVE_INFINITY;
  /** Blocks per `eth_getLogs` now: `maxBlockRange`, or less once the RPC refused a range. */
  #blockRange: bigint;
  /**
   * Where `#settlementEvent` goes on reading for a row's settlement it has not found yet, by row,
   * request block and kind: the first block not read (never above the reorg window's start).
   */
  readonly #settlementScan = new Map<string, bigint>();
  /**
   * Failures that repeat pass after pass (an RPC down, the bridge unfunded, a row the oracle refuses),
   * logged once a spell (and every 5 minutes while it lasts), not once a pass: see `LogSpells`.
   */
  readonly #spells: LogSpells;
  /**
   * Blocks the cursor stood on in this process: where a reorg under the cursor began is found among
   * them, so a reorg deeper than `reorgWindow` is read again from where it began, not from `reorgWindow`
   * below the cursor.
   */
  readonly #checkpoints = new CursorCheckpoints();
  /** Whether the RPC's head behind the cursor was said (once a spell; see `#scan`). */
  #behindSaid = false;
  readonly #reader: OracleEventReader;
  /** The spells of whole passes under way, by key (`pass:<code>`), ended by the next pass that works. */
  readonly #passSpells = new Set<string>();

  constructor(o: ChainWatcherOptions) {
    this.#o = {
      confirmations: 2,
      fromBlock: 0n,
      maxBlockRange: 2_000n,
      maxRangesPerPass: 20,
      maxEventsPerPass: Number.POSITIVE_INFINITY,
      reorgWindow: 64n,
      pollMs: 1_000,
      quotaPerDay: 1_000_000,
      replaceAfterMs: 60_000,
      feeBumpPercent: 25,
      maxSettlementGas: MAX_TRANSACTION_GAS,
      balanceCheckMs: 60_000,
      bridgeCheckMs: 30_000,
      assumeFinalAfterMs: 1_200_000,
      settledCheckMs: 30_000,
      now: () => Date.now(),
      random: (n) => crypto.getRandomValues(new Uint8Array(n)),
      ...o,
    };
    this.#ref = { chainId: o.chainId, contract: o.oracle.toLowerCase() };
    this.#spells = new LogSpells(() => this.#o.now());
    this.#blockRange = this.#o.maxBlockRange > 0n ? this.#o.maxBlockRange : 1n;
    this.#reader = new OracleEventReader({
      client: this.#o.client,
      oracle: this.#o.oracle,
      ref: this.#ref,
      onReread: () => {
        this.#stats.rereads++;
      },
      ...(o.log ? { log: o.log } : {}),
    });
    this.#balance = new BridgeBalanceMonitor({
      client: this.#o.client,
      address: this.#o.wallet.account.address,
      ...(o.minBridgeBalance !== undefined ? { minimum: o.minBridgeBalance } : {}),
      now: this.#o.now,
      ...(o.log ? { log: o.log } : {}),
      ...(o.onBalance ? { onBalance: o.onBalance } : {}),
    });
  }

  get oracle(): OracleRef {
    return this.#ref;
  }

  stats(): ChainWatcherStats {
    const b = this.#balance.last;
    return {
      ...this.#stats,
      bridge: b && { ...b, wei: b.wei.toString(), minimumWei: b.minimumWei.toString() },
    };
  }

  /** Check the chain and the oracle (`check`), then poll every `pollMs` until `stop`. */
  async start(): Promise<void> {
    await this.check();

    this.#timer = setInterval(() => void this.poll(), this.#o.pollMs);
    void this.poll();
  }

  /**
   * The RPC serves the configured chain, the oracle is deployed there, its `bridge()` is this relay's
   * account, and `maxSettlementGas` can carry a fulfil with a consumer's callback; else a
   * `ChainBridgeError`: `CHAIN_ID_MISMATCH`, `ORACLE_NOT_FOUND`, `BRIDGE_MISMATCH` (every fulfil would
   * revert `NotBridge`, every refund before its deadline `NotExpired`), `SETTLEMENT_GAS_TOO_LOW` (below
   * `leastFulfilGas` of the oracle's `callbackGasLimit()`: no contract's request could be answered nor
   * refunded, each fulfil reverting `InsufficientGasForCallback`), or `CHAIN_RPC_FAILED` when the RPC
   * could not be read (its message is viem's short one, never viem's whole message, which names the RPC
   * URL, and a provider's URL holds its API key; the error it wraps is not kept, as it holds the URL too).
   *
   * With `mismatch: 'tolerate'` (a Workers cron run, whose passes are each a new watcher) another bridge
   * is no error: it is noted as when found while running (`bridgeMismatch` in the stats, the pass that
   * follows counting and saying it), so that pass still does what needs no bridge role (refunds past
   * their deadline, recording what the chain holds) and sends nothing that would revert.
   */
  async check(o: { mismatch?: 'refuse' | 'tolerate' } = {}): Promise<void> {
    let chainId: number;
    let code: string | undefined;
    let settings: { bridge: Address; callbackGasLimit: number } | undefined;
    try {
      chainId = await this.#checkChainId();
      code = await this.#o.client.getCode({ address: this.#o.oracle });
      if (code !== undefined && code !== '0x') settings = await this.#oracleSettings();
    } catch (e) {
      if (e instanceof ChainBridgeError) throw e;
      const rpcUrl = (this.#o.client.transport as { url?: unknown }).url;
      const rpc = typeof rpcUrl === 'string' ? rpcUrl : undefined;
      throw new ChainBridgeError(
        'CHAIN_RPC_FAILED',
        `the chain's RPC could not be read: ${chainErrorText(e, rpc)}`,
        { chainId: this.#o.chainId, ...(rpc !== undefined ? { rpc: redactRpcUrl(rpc) } : {}) },
        "check that the chain's RPC (--chain-rpc, SYNOD_CHAIN_RPC) is up and reachable from here",
      );
    }
    if (settings === undefined) {
      throw new ChainBridgeError(
        'ORACLE_NOT_FOUND',
        `no contract at ${this.#o.oracle} on chain ${chainId}`,
        { oracle: this.#o.oracle, chainId },
        'deploy SynodOracle (contracts/) and pass its address',
      );
    }
    const account = this.#o.wallet.account.address;
    const mismatched = !isAddressEqual(settings.bridge, account);
    if (mismatched && o.mismatch !== 'tolerate')
      throw bridgeMismatch(this.#o.oracle, settings.bridge, account);
    this.#bridgeRead(settings.bridge);
    this.#nextBridgeCheck = this.#o.now() + this.#o.bridgeCheckMs;
    const least = leastFulfilGas(settings.callbackGasLimit);
    if (this.#o.maxSettlementGas < least) {
      throw new ChainBridgeError(
        'SETTLEMENT_GAS_TOO_LOW',
        `the most gas a fulfil may use (${this.#o.maxSettlementGas}) is below the least a fulfil with a consumer's callback takes on this oracle (${least}, its callbackGasLimit being ${settings.callbackGasLimit}): no contract's request could be answered`,
        {
          oracle: this.#o.oracle,
          maxSettlementGas: this.#o.maxSettlementGas.toString(),
          callbackGasLimit: settings.callbackGasLimit,
          leastFulfilGas: least.toString(),
        },
        `set --max-settlement-gas (SYNOD_CHAIN_MAX_SETTLEMENT_GAS) to at least ${least}`,
      );
    }
  }

  /**
   * The oracle's `bridge()` and `callbackGasLimit()`. A contract that answers neither (not a SynodOracle)
   * is `ORACLE_NOT_FOUND`; an RPC that fails throws as it failed.
   */
  async #oracleSettings(): Promise<{ bridge: Address; callbackGasLimit: number }> {
    const read = <F extends 'bridge' | 'callbackGasLimit'>(functionName: F) =>
      this.#o.client.readContract({ address: this.#o.oracle, abi: synodOracleAbi, functionName });
    try {
      const [bridge, callbackGasLimit] = await Promise.all([read('bridge'), read('callbackGasLimit')]);
      return { bridge, callbackGasLimit };
    } catch (e) {
      if (rpcFailed(e)) throw e;
      throw new ChainBridgeError(
        'ORACLE_NOT_FOUND',
        `the contract at ${this.#o.oracle} on chain ${this.#o.chainId} is not a SynodOracle: it does not answer bridge() and callbackGasLimit()`,
        { oracle: this.#o.oracle, chainId: this.#o.chainId, cause: describe(e) },
        'pass the address of a SynodOracle (contracts/), as `npm run oracle -- deploy` printed it',
      );
    }
  }

  /**
   * Read the oracle's `bridge()` again (its owner may change it at any time): while it is another
   * account than this relay's, `bridgeMismatch` in the stats says so and nothing that would revert is
   * sent; the spell's end is logged once. The next read is `bridgeCheckMs` later.
   */
  async #checkBridge(): Promise<void> {
    this.#nextBridgeCheck = this.#o.now() + this.#o.bridgeCheckMs;
    const oracleBridge = await this.#o.client.readContract({
      address: this.#o.oracle,
      abi: synodOracleAbi,
      functionName: 'bridge',
    });
    this.#bridgeRead(oracleBridge);
  }

  /** The oracle's `bridge()` as just read: held against this relay's account (see `#checkBridge`). */
  #bridgeRead(oracleBridge: Address): void {
    const account = this.#o.wallet.account.address;
    if (!isAddressEqual(oracleBridge, account)) {
      const was = this.#stats.bridgeMismatch;
      if (was === null || !isAddressEqual(was.oracleBridge, oracleBridge)) {
        this.#stats.bridgeMismatch = { oracleBridge, account, since: was?.since ?? this.#o.now() };
      }
      return;
    }
    if (this.#stats.bridgeMismatch === null) return;
    this.#stats.bridgeMismatch = null;
    const ended = this.#spells.ended('bridge-mismatch');
    this.#o.log?.({
      level: 'info',
      msg: "the oracle's bridge is this relay's account again; settling resumes",
      code: 'BRIDGE_MISMATCH',
      account,
      ...(ended !== null ? { failedForMs: ended.forMs, failures: ended.failures } : {}),
    });
  }

  /**
   * A pass while the oracle's bridge is another account: counted as a failure (the relay cannot do its
   * work: `lastOkAt` stands still) unless the pass failed otherwise too (`count` false: counted there), and
   * logged once a spell (and every 5 minutes while it lasts).
   */
  #bridgeMismatched(m: NonNullable<ChainWatcherStats['bridgeMismatch']>, count: boolean): void {
    if (count) this.#stats.errors++;
    const spell = this.#spells.failed('bridge-mismatch');
    if (!spell.log) return;
    const err = bridgeMismatch(this.#o.oracle, m.oracleBridge, m.account);
    this.#o.log?.({
      level: 'error',
      msg: `${err.message}; only refunds past their deadline are sent until it is`,
      code: err.code,
      ...err.details,
      hint: err.hint,
      ...(spell.failures > 1 ? { failedForMs: spell.sinceMs, failures: spell.failures } : {}),
    });
  }

  /**
   * The RPC's chain id, or a `ChainBridgeError` (`CHAIN_ID_MISMATCH`) when it is not the configured one.
   * Checked on start and before every pass: a node restarted with another chain, or another chain behind
   * the same URL, would otherwise look like a reorg of every block, and its events like the oracle's.
   */
  async #checkChainId(): Promise<number> {
    const chainId = await this.#o.client.getChainId();
    if (chainId !== this.#o.chainId) {
      throw new ChainBridgeError(
        'CHAIN_ID_MISMATCH',
        `the RPC serves chain ${chainId}, not ${this.#o.chainId}`,
        { expected: this.#o.chainId, actual: chainId },
        'point the relay at the RPC of the chain the oracle is deployed on',
      );
    }
    return chainId;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#pass;
  }

  /** One pass: read new confirmed events, then settle what is done. Passes never overlap; none after `stop`. */
  poll(): Promise<void> {
    if (this.#pass) return this.#pass;
    if (this.#stopped) return Promise.resolve();
    this.#pass = (async () => {
      const errors = this.#stats.errors;
      try {
        await this.#checkChainId();
        // What has its verdict is settled even in a pass that could not read or take new events (its
        // relay's network out of reach, say): the first failure is the pass's, after the rest ran.
        let failure: unknown;
        // The oracle's owner may have changed its bridge: read again every `bridgeCheckMs`. A read that
        // fails leaves the last one standing for this pass.
        if (this.#o.now() >= this.#nextBridgeCheck) {
          try {
            await this.#checkBridge();
          } catch (e) {
            failure = e;
          }
        }
        this.#checkingSettled = this.#o.now() >= this.#nextSettledCheck;
        this.#heldLookupsLeft = HELD_LOOKUPS_PER_PASS;
        this.#heldLeft = false;
        this.#deadlineReadsLeft = HELD_LOOKUPS_PER_PASS;
        this.#scansLeft = SETTLEMENT_SCANS_PER_PASS;
        try {
          await this.#scan();
        } catch (e) {
          failure ??= e;
        }
        try {
          await this.#settle();
          if (this.#o.now() >= this.#nextSettledCheck) await this.#recheckSettled();
          if (this.#o.now() >= this.#nextBalanceCheck) await this.checkBalance();
        } catch (e) {
          failure ??= e;
        }
        const mismatch = this.#stats.bridgeMismatch;
        // One failed pass is one error: a pass that failed otherwise too is counted below, once.
        if (mismatch !== null) this.#bridgeMismatched(mismatch, failure === undefined);
        if (failure !== undefined) throw failure;
      } catch (e) {
        this.#stats.errors++;
        const code = codeOf(e);
        const key = `pass:${code.code}`;
        this.#passSpells.add(key);
        const spell = this.#spells.failed(key);
        if (spell.log) {
          this.#o.log?.({
            level: 'error',
            msg: 'chain watcher pass failed',
            ...code,
            err: describe(e),
            ...(spell.failures > 1 ? { failedForMs: spell.sinceMs, failures: spell.failures } : {}),
          });
        }
      } finally {
        this.#stats.passes++;
        if (this.#stats.errors === errors) {
          this.#stats.lastOkAt = this.#o.now();
          this.#passesWorkAgain();
        }
        this.#pass = undefined;
        this.#o.onPass?.(this.stats());
      }
    })();
    return this.#pass;
  }

  /**
   * Read the bridge account's balance and hold it against the minimum (`minBridgeBalance`, else the
   * default reserve at the current gas price). Logs a warning when it falls below, and once more when it
   * is back above. Passes call this every `balanceCheckMs`, and at the end of a pass in which the bridge
   * could not pay for a settlement, or sent one while its balance was last read low (so that funding
   * the account shows at once).
   */
  async checkBalance(): Promise<BridgeBalance> {
    const b = await this.#balance.check();
    this.#nextBalanceCheck = b.at + this.#o.balanceCheckMs;
    return b;
  }

  // -------------------------------------------------------------------------------------------------
  // Reading events

  async #scan(): Promise<void> {
    const { client, confirmations, reorgWindow } = this.#o;
    const head = await client.getBlockNumber({ cacheTime: 0 });
    this.#stats.head = Number(head);
    const safe = head - BigInt(confirmations);
    if (safe < 0n) return;
    let from = this.#o.fromBlock;
    // A cursor inside a block: the next range starts at that block, past the events already taken.
    let resume: ReadResume | undefined;
    const cursor = await this.#o.store.cursor(this.#ref);
    if (cursor !== null) {
      this.#stats.cursor = cursor.blockNumber;
      if (cursor.logIndex === null) {
        from = BigInt(cursor.blockNumber) + 1n;
      } else {
        from = BigInt(cursor.blockNumber);
        resume = { blockNumber: from, logIndex: cursor.logIndex };
      }
      // Null: the chain is shorter than the cursor.
      const at = await this.#reader.blockHash(BigInt(cursor.blockNumber));
      if (at !== cursor.blockHash) {
        // The block under the cursor was replaced (a reorg deeper than `confirmations`), or is past the
        // head (a reorg to a shorter chain, or an RPC behind the one read before): read the last
        // `reorgWindow` blocks again; their events not seen again stay `reorged`. Whether the cursor was
        // inside its block or not: every event from there is read again.
        const back = BigInt(cursor.blockNumber) - reorgWindow;
        // Deeper than that, or a chain now shorter than `back`: from just above the newest block the cursor
        // stood on that is still there (a block past the head is not).
        const fork = await this.#checkpoints.forkBelow(back, reorgWindow, (n) => this.#reader.blockHash(n));
        if (at === null && fork === null && head < back && (await this.#stillHoldsWhatWasRead(head))) {
          // No block the cursor stood on is known here (a restart), but the chain still holds the newest
          // event read from it: an RPC behind the one read before, not a reset chain. Nothing is marked or
          // read again; the cursor waits for the head to pass it.
          if (!this.#behindSaid) {
            this.#behindSaid = true;
            this.#o.log?.({
              level: 'warn',
              msg: "the chain RPC's head is behind the read cursor; waiting for it",
              cursor: cursor.blockNumber,
              head: Number(head),
              hint: 'an RPC behind a load balancer, or a node still syncing: events are read once its head passes the cursor',
            });
          }
          return;
        }
        const start = fork !== null && fork.from < back ? fork.from : back;
        // Shorter, and no block the cursor stood on here is still there (or none is known, as after a
        // restart, and the chain is shorter by more than the window): the chain was reset, as a
        // development chain is; read from the start.
        const reset = at === null && (fork?.unknown === true || (fork === null && head < back));
        from = !reset && start > this.#o.fromBlock ? start : this.#o.fromBlock;
        resume = undefined;
        if (fork?.unknown === true && !reset) {
          this.#o.log?.({
            level: 'error',
            msg: 'chain reorg deeper than every block the cursor stood on here; events below may be missed',
            code: 'CHAIN_REORG_TOO_DEEP',
            cursor: cursor.blockNumber,
            from: Number(from),
            hint: 'to read every block again: stop the relay, delete its row of chain_cursors, start it (it reads from --from-block; rows it holds are not admitted twice)',
          });
        }
        const n = await this.#o.store.markReorged(this.#ref, from, this.#o.now());
        this.#reorgSeen();
        this.#o.log?.({
          level: 'warn',
          msg: 'chain reorg under the cursor; reading again',
          cursor: cursor.blockNumber,
          from: Number(from),
          reorged: n,
          ...(at === null ? { head: Number(head), ...(reset ? { reset: true } : {}) } : {}),
        });
        if (from > safe) {
          // Nothing to read yet (the chain is shorter than where to read from): the cursor goes back to
          // the newest block still there, so that the next pass does not take the same reorg again.
          const below = from - 1n;
          const hash = below >= 0n ? await this.#reader.blockHash(below) : null;
          if (hash !== null) {
            await this.#o.store.setCursor(this.#ref, below, hash, this.#o.now(), null);
            this.#checkpoints.add(below, hash);
            this.#stats.cursor = Number(below);
          }
        }
      }
    }
    this.#behindSaid = false;
    // A long backlog is read over several passes, settling between them.
    let eventsLeft = this.#o.maxEventsPerPass;
    for (
      let ranges = 0;
      from <= safe && !this.#stopped && ranges < this.#o.maxRangesPerPass && eventsLeft > 0;
      ranges++
    ) {
      const to = from + this.#blockRange - 1n < safe ? from + this.#blockRange - 1n : safe;
      const read = await this.#reader.readRange(from, to);
      // The chain kept changing under the reads: the cursor stays, the next pass reads the range again.
      if (read === null) return;
      if (read === 'refused') {
        this.#blockRange = (to - from + 1n) / 2n;
        this.#o.log?.({
          level: 'warn',
          msg: 'the RPC refused a block range of eth_getLogs; reading narrower ranges',
          from: Number(from),
          to: Number(to),
          blocks: Number(this.#blockRange),
        });
        continue;
      }
      const taken = withinBudget(read.events, eventsLeft, resume);
      const end = taken.cut ?? { number: to, hash: read.toHash, logIndex: null };
      for (const e of taken.events) {
        this.#stats.events++;
        await this.#onEvent(e);
      }
      eventsLeft -= taken.events.length;
      await this.#o.store.setCursor(this.#ref, end.number, end.hash, this.#o.now(), end.logIndex);
      this.#checkpoints.add(end.number, end.hash);
      this.#stats.cursor = Number(end.number);
      if (end.logIndex === null) {
        from = end.number + 1n;
        resume = undefined;
      } else {
        from = end.number;
        resume = { blockNumber: end.number, logIndex: end.logIndex };
      }
    }
  }

  /**
   * Whether the chain still holds the newest event read from it at or below `head` (its block's hash
   * unchanged): the chain was not reset. False with no such event recorded.
   */
  async #stillHoldsWhatWasRead(head: bigint): Promise<boolean> {
    const anchor = await this.#o.store.anchorAtOrBelow(this.#ref, head);
    if (anchor === null) return false;
    const hash = await this.#reader.blockHash(BigInt(anchor.blockNumber));
    return hash !== null && hash.toLowerCase() === anchor.blockHash.toLowerCase();
  }

  /**
   * A reorg was seen: counted, and the settlements not yet final are checked on chain in this pass
   * rather than at the next `settledCheckMs`: one the reorg undid (or that its transaction, mined again,
   * could not make on the new chain) is settled again, or its row found lost, without waiting.
   */
  #reorgSeen(): void {
    this.#stats.reorgs++;
    this.#nextSettledCheck = Number.NEGATIVE_INFINITY;
  }

  async #onEvent(e: OracleRequestEvent): Promise<void> {
    const requestId = chainRequestIdOf(e);
    const row = await this.#o.store.byRequestId(requestId);
    if (row !== null && row.status !== 'reorged') {
      if (row.txHash !== e.txHash.toLowerCase() || row.logIndex !== e.logIndex) {
        // The recorded row wins for now. If its event is gone, that is found before anything more is
        // sent for it (its block is checked) or when its settlement is followed up or checked (the
        // settlement names the recorded event's question, which the contract refuses for any other);
        // the blocks are then read again, and this event with them.
        this.#o.log?.({
          level: 'warn',
          msg: 'a second event for a recorded chain request; left until the recorded one is settled or found gone',
          requestId,
        });
      }
      return;
    }
    const held = await this.#o.lookup(requestId);
    let refused: string | null;
    let settled = false;
    if (held !== null) {
      // Admitted before a reorg took its event away (or before a restart lost the row): the same
      // request needs nothing more; another request under the same number is refunded.
      refused = sameRequest(held.request, e) ? null : 'REORG_CONFLICT';
    } else if (await this.#settledOnChain(e)) {
      // Settled before its event was read (refunded by anyone after the deadline while the relay was
      // down or behind, or settled by another watcher of the bridge): nothing to compute, nor to send.
      refused = null;
      settled = true;
    } else {
      refused = await this.#admit(e);
    }
    await this.#o.store.recordRequest(e, this.#o.now());
    if (refused === null && !settled) return;
    const recorded = await this.#o.store.byRequestId(requestId);
    // The refund names this event's question: sent only while the row holds this very event.
    if (
      recorded?.status === 'pending' &&
      recorded.txHash === e.txHash.toLowerCase() &&
      recorded.logIndex === e.logIndex
    ) {
      if (refused !== null) await this.#refundAsRead(recorded, e, refused);
      else await this.#settledBeforeRead(recorded);
    }
  }

  /**
   * Refund a request refused as its event was read. A refund that cannot be sent now (the oracle refuses
   * it, the RPC fails, the bridge cannot pay) fails this row only, not the reading of the events after
   * it: the row is recorded pending, and `#settle` sends its refund at a later pass.
   */
  async #refundAsRead(row: ChainRequestRow, e: OracleRequestEvent, reason: string): Promise<void> {
    try {
      await this.#send(row, e, { kind: 'refund', reason });
      this.#rowWorks('chain settlement failed', row);
    } catch (err) {
      if (cannotPay(err)) this.#unfunded(row, err);
      else this.#rowFailed('chain settlement failed', row, err);
    }
  }

  /**
   * Whether the oracle holds the event's request settled already (fulfilled or refunded, under the
   * event's own question: a number a reorg gave to another question is left to the usual checks).
   */
  async #settledOnChain(e: OracleRequestEvent): Promise<boolean> {
    const [, , , status, questionHash] = await this.#o.client.readContract({
      address: this.#o.oracle,
      abi: synodOracleAbi,
      functionName: 'requests',
      args: [e.requestNo],
    });
    return (
      (status === ON_CHAIN.fulfilled || status === ON_CHAIN.refunded) &&
      questionHash.toLowerCase() === e.questionHash.toLowerCase()
    );
  }

  /**
   * A row whose request was settled on chain before its event was read: recorded as the chain holds
   * it, never admitted (said `SETTLED_BY_ANOTHER_ACCOUNT`: this relay sent nothing for it). If the node
   * does not show the settlement's event yet (or this pass's lookups of settlement events are spent), the
   * row stays pending (not admitted) and a later pass looks again (`#decide`).
   */
  async #settledBeforeRead(row: ChainRequestRow): Promise<void> {
    const recorded = await this.#recordedOnChain(
      row,
      undefined,
      'a chain request was settled on chain before its event was read; recorded, not computed',
    );
    if (recorded !== null) return;
    this.#o.log?.({
      level: 'info',
      msg: 'a chain request is settled on chain but its settlement event is not readable yet; not computed',
      requestId: row.requestId,
    });
  }

  /** Admit an event's request; null when it is in the admission log, else the reason it was refused. */
  async #admit(e: OracleRequestEvent): Promise<string | null> {
    if (!decodedAsAsked(e)) return 'INVALID_INPUT';
    const now = this.#o.now();
    // The relay's defaults (the models its network serves) are read outside the refusal path: not being
    // able to read them (a gateway out of reach, a store down) fails this pass, and the event is read
    // again by the next one. Refused as the request's own fault, it would be refunded on chain for good.
    const defaults = await this.#o.defaults();
    let built: ReturnType<typeof buildRequest>;
    try {
      built = buildRequest(oracleRequestInput(e), defaults, now, this.#o.random, chainOrigin(e));
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      return typeof code === 'string' ? code : 'INVALID_INPUT';
    }
    const outcome = await this.#o.admit({
      body: built.body,
      bodyJson: built.json,
      callerId: `chain:${this.#ref.chainId}:${this.#ref.contract}`,
      quotaPerDay: this.#o.quotaPerDay,
      day: utcDay(now),
      // One admission per on-chain request, whatever happens between this and recording the event.
      idempotency: {
        key: e.requestNo.toString(),
        bodyDigest: keccak256(`${e.txHash}${e.logIndex.toString(16).padStart(8, '0')}`).slice(2),
      },
    });
    if (outcome.kind === 'quota-exceeded') return 'QUOTA_EXCEEDED';
    // The number was admitted from another event, and that request is not found: never answer this one
    // with it.
    if (outcome.kind === 'conflict') return 'REORG_CONFLICT';
    this.#stats.admitted += outcome.kind === 'created' ? 1 : 0;
    if (outcome.kind === 'created') await this.#o.admitted?.([outcome.requestId]);
    return null;
  }

  // -------------------------------------------------------------------------------------------------
  // Settling

  /**
   * Visit every pending row once, oldest first, page after page (each page after the last row of the one
   * before: rows waiting for their verdict, or held back while another account is the bridge, never hide
   * the rows behind them). A row that becomes pending behind the sweep is visited by the next pass.
   */
  async #settle(): Promise<void> {
    let after: PendingKey | undefined;
    for (;;) {
      const rows = await this.#o.store.pending(this.#ref, SETTLE_PAGE, after);
      for (const row of rows) {
        if (this.#stopped) return;
        try {
          const moved = await this.#settleRow(row);
          this.#rowWorks('chain settlement failed', row);
          // A settlement sent or recorded: the bridge pays again (a spell of BRIDGE_UNFUNDED is over).
          if (moved) this.#spells.ended('unfunded');
        } catch (e) {
          // The bridge cannot pay: every other row would fail the same way. One error for the pass, the
          // balance read again at its end (`/metrics`, the low-balance warning), settling resumed by the
          // first pass after the account is funded.
          if (cannotPay(e)) {
            this.#unfunded(row, e);
            return;
          }
          // One row that cannot be settled now (an RPC error, a refused transaction) does not hold up
          // the others; it is tried again next pass.
          this.#rowFailed('chain settlement failed', row, e);
        }
      }
      const last = rows.at(-1);
      if (last === undefined || rows.length < SETTLE_PAGE) break;
      after = pendingKeyOf(last);
    }
    // Every held-back row past the last one looked up before was looked up: the next settlement check
    // starts from the oldest again.
    if (this.#checkingSettled && !this.#heldLeft) this.#heldAfter = null;
  }

  /** True when the row moved on (settled, or a settlement was sent). */
  async #settleRow(row: ChainRequestRow): Promise<boolean> {
    if (row.fulfilledTx !== null) return this.#followUp(row, row.fulfilledTx as Hex);
    const { s, e } = await this.#decide(row, await this.#o.lookup(row.requestId));
    if (s.kind === 'wait') return false;
    let event = e;
    // Not the oracle's bridge now: only a refund past its deadline (anyone's to send) would not revert.
    // The rest is held back, at a bounded cost a pass (`#heldBack`).
    if (this.#stats.bridgeMismatch !== null) {
      if (s.kind !== 'refund') return this.#heldBack(row);
      event = await this.#pastDeadline(row, e);
      if (event === null) return this.#heldBack(row);
    }
    if (!(await this.#stillCanonical(row))) return false;
    // The settlement names the question of the event it answers, so that event is read before sending
    // (only now: rows still being answered cost no receipt read).
    event ??= await this.#eventOf(row);
    // Canonical a moment ago, yet not readable: an RPC hiccup or a reorg just now; the next pass sees.
    if (event === null) return false;
    return this.#send(row, event, s);
  }

  /**
   * A row whose settlement is held back while another account is the oracle's bridge. It may be settled
   * meanwhile by whoever is the bridge (or, past its deadline, by anyone): looked up on chain in each
   * settlement check (`settledCheckMs`), at most `HELD_LOOKUPS_PER_PASS` rows a pass, each check going on
   * after the last row the one before looked up. True when it was recorded settled.
   */
  async #heldBack(row: ChainRequestRow): Promise<boolean> {
    if (!this.#checkingSettled) return false;
    const key = pendingKeyOf(row);
    if (this.#heldAfter !== null && !pendingAfter(key, this.#heldAfter)) return false;
    if (this.#heldLookupsLeft <= 0) {
      this.#heldLeft = true;
      return false;
    }
    this.#heldLookupsLeft--;
    this.#heldAfter = key;
    if (!(await this.#stillCanonical(row))) return false;
    return (await this.#recordOnChain(row)) === 'recorded';
  }

  /**
   * A refund held back while another account is the bridge: its event if the request is past its
   * deadline (the refund is then anyone's to send), else null. The event is read (when `e` is null) for
   * at most `HELD_LOOKUPS_PER_PASS` rows a pass, the oldest first: the rows past them are not past their
   * deadline while those are not, the oracle's timeout being the same for all.
   */
  async #pastDeadline(
    row: ChainRequestRow,
    e: OracleRequestEvent | null,
  ): Promise<OracleRequestEvent | null> {
    let event = e;
    if (event === null) {
      if (this.#deadlineReadsLeft <= 0) return null;
      this.#deadlineReadsLeft--;
      event = await this.#eventOf(row);
    }
    return event !== null && (await this.#expired(event)) ? event : null;
  }

  /**
   * What to send for a pending row given the relay's view of its request, and the row's event when it
   * had to be read to decide (null otherwise).
   */
  async #decide(
    row: ChainRequestRow,
    view: FoundView | null,
  ): Promise<{ s: Settlement; e: OracleRequestEvent | null }> {
    const admittedElsewhere =
      view?.request.origin.kind === 'chain' && view.request.origin.txHash !== row.txHash;
    if (view !== null && !admittedElsewhere) return { s: settlementFor(view), e: null };
    const e = await this.#eventOf(row);
    if (e === null) {
      // Gone with a reorg (the row is marked lost here: nothing else would bring it to that check), or
      // an RPC hiccup (decided again next pass).
      await this.#stillCanonical(row);
      return { s: { kind: 'wait' }, e: null };
    }
    if (view === null) {
      // Not admitted: maybe because the oracle held it settled when its event was read.
      if (await this.#settledOnChain(e)) {
        await this.#settledBeforeRead(row);
        return { s: { kind: 'wait' }, e: null };
      }
      return { s: await this.#reconcile(e), e };
    }
    // The request was admitted from an event in another transaction (before a reorg): whatever it asks, its
    // signed request names that transaction, so it does not answer this row (see sameRequest): refunded.
    return { s: { kind: 'refund', reason: 'REORG_CONFLICT' }, e };
  }

  /**
   * Settlements not yet final, checked on chain, most recent first:
   * - one the contract holds as pending again lost its settlement to a reorg deeper than
   *   `confirmations`: its row is reopened (pending, no transaction), so this pass's next settle sends
   *   it again; if its event went too, the canonical-block check before sending catches that;
   * - one the contract holds settled by another transaction (after such a reorg, the bridge's or
   *   anyone's, maybe a refund where the row says fulfilled) is recorded as the chain has it;
   * - one whose settling block is at or below the chain's `finalized` block (without one: recorded
   *   `assumeFinalAfterMs` ago) is final, and is not checked again.
   */
  async #recheckSettled(): Promise<void> {
    this.#nextSettledCheck = this.#o.now() + this.#o.settledCheckMs;
    const rows = await this.#o.store.unfinalized(this.#ref, 256);
    if (rows.length === 0) return;
    const finalized = await this.#finalizedBlock();
    let reopened = 0;
    for (const row of rows) {
      if (this.#stopped) return;
      try {
        if (await this.#recheckRow(row, finalized)) reopened++;
        this.#rowWorks('checking a chain settlement failed', row);
      } catch (e) {
        // One settlement that cannot be checked now (an RPC error) does not hold up the others; it is
        // checked again next time.
        this.#rowFailed('checking a chain settlement failed', row, e);
      }
    }
    if (reopened > 0) await this.#settle();
  }

  /** The bridge account could not pay for a row's settlement: counted, logged, balance read this pass. */
  #unfunded(row: ChainRequestRow, e: unknown): void {
    const err = new ChainBridgeError(
      'BRIDGE_UNFUNDED',
      'the bridge account cannot pay for settlements; nothing is settled until it is funded',
      { bridge: this.#o.wallet.account.address, requestId: row.requestId, cause: describe(e) },
      'send ether to the bridge account; settling resumes on the next pass',
    );
    this.#stats.errors++;
    this.#nextBalanceCheck = Number.NEGATIVE_INFINITY;
    // Once a spell: the balance monitor says when the account is funded again ('sufficient again').
    const spell = this.#spells.failed('unfunded');
    if (!spell.log) return;
    this.#o.log?.({
      level: 'error',
      msg: err.message,
      code: err.code,
      ...err.details,
      hint: err.hint,
      ...(spell.failures > 1 ? { failedForMs: spell.sinceMs, failures: spell.failures } : {}),
    });
  }

  /**
   * A row whose step failed for now: counted, and logged once a spell (the step is tried again every
   * pass); `#rowWorks` ends the spell.
   */
  #rowFailed(msg: keyof typeof WORKS_AGAIN, row: ChainRequestRow, e: unknown): void {
    this.#stats.errors++;
    const spell = this.#spells.failed(`${msg}:${row.requestId}`);
    if (!spell.log) return;
    const gone = blockGone(e);
    this.#o.log?.({
      // A block gone (a reorg under way) passes: a warning with what it is, not an RPC failure.
      level: gone ? 'warn' : 'error',
      msg,
      requestId: row.requestId,
      ...codeOf(e),
      err: describe(e),
      ...(gone
        ? { hint: 'a reorg took the block, or the RPC node is behind its peers; read again at the next pass' }
        : {}),
      ...(spell.failures > 1 ? { failedForMs: spell.sinceMs, failures: spell.failures } : {}),
    });
  }

  /** The row's step (`msg`) went through: a spell of its failures, if any, is over and said so. */
  #rowWorks(msg: keyof typeof WORKS_AGAIN, row: ChainRequestRow): void {
    const ended = this.#spells.ended(`${msg}:${row.requestId}`);
    if (ended === null) return;
    this.#o.log?.({
      level: 'info',
      msg: WORKS_AGAIN[msg],
      requestId: row.requestId,
      failedForMs: ended.forMs,
      failures: ended.failures,
    });
  }

  /** A pass worked: the spells of failed passes are over, each said so once. */
  #passesWorkAgain(): void {
    for (const key of this.#passSpells) {
      const ended = this.#spells.ended(key);
      if (ended === null) continue;
      this.#o.log?.({
        level: 'info',
        msg: 'chain watcher passes work again',
        code: key.slice('pass:'.length),
        failedForMs: ended.forMs,
        failures: ended.failures,
      });
    }
    this.#passSpells.clear();
  }

  /** One settlement of `#recheckSettled`; true when it was undone and its row reopened. */
  async #recheckRow(row: ChainRequestRow, finalized: bigint | null): Promise<boolean> {
    // A settled row always names its transaction (a CHECK holds it).
    const tx = row.fulfilledTx as Hex;
    // The common case, in one call: the row's own transaction is on the chain and settled the request.
    // That needs no second look at the row's event: the transaction names the question of the event it
    // was signed for, and the contract refuses it for any request under the number that asks another
    // (so a reorg that gave the number to another question leaves it reverted, found below: pending or
    // unknown, reopened, and the row's event checked), while the same question asked again (the same
    // transaction mined again) is rightly settled by it.
    const settledIn = await this.#settledBy(row, tx, row.status as 'fulfilled' | 'refunded');
    if (settledIn !== null) {
      await this.#completed(row, tx, settledIn.settlement);
      await this.#finalIf(row, tx, settledIn.block, finalized);
      return false;
    }
    const status = await this.#onChainStatus(row);
    if (status === ON_CHAIN.fulfilled || status === ON_CHAIN.refunded) {
      await this.#recordOther(row, status === ON_CHAIN.fulfilled ? 'fulfilled' : 'refunded', finalized);
      return false;
    }
    if (!(await this.#o.store.reopen(row.requestId, tx, this.#o.now()))) return false;
    this.#stats.undone++;
    this.#o.log?.({
      level: 'warn',
      msg: 'a settlement was undone by a reorg deeper than the confirmations; settling again',
      requestId: row.requestId,
      tx,
      onChain: status,
    });
    // The request's own event may have gone with the reorg too (the number unknown to the contract, or
    // holding another question): mark it lost now rather than when something is next sent for it (a
    // refused request has nothing in the relay that would bring it to that check).
    await this.#stillCanonical(row);
    return true;
  }

  /**
   * The chain's `finalized` block number, or null when its RPC names none (it refuses the tag). An RPC
   * that cannot be reached says nothing about the tag: that error fails the check, and nothing is taken
   * as final by age meanwhile.
   */
  async #finalizedBlock(): Promise<bigint | null> {
    try {
      return (await this.#o.client.getBlock({ blockTag: 'finalized' })).number;
    } catch (e) {
      if (e instanceof BaseError && e.walk((x) => x instanceof HttpRequestError || x instanceof TimeoutError))
        throw e;
      return null;
    }
  }

  /**
   * The contract holds the request settled (`kind`), and the row's transaction's receipt does not show
   * it: a reorg took it, and the bridge's or anyone's settlement stands instead (the row follows the
   * chain, said `SETTLED_BY_ANOTHER_ACCOUNT` when not this relay's), or the node does not show that
   * receipt (the row's own settlement, found by its event, completes the row if it lacks its event's
   * fields). Final once that settlement's block is.
   */
  async #recordOther(
    row: ChainRequestRow,
    kind: 'fulfilled' | 'refunded',
    finalized: bigint | null,
  ): Promise<void> {
    const settlement = await this.#settlementEvent(row, kind);
    // Settled, but the node does not show the event (yet), or this pass's lookups are spent: looked at
    // again next check.
    if (settlement === null || settlement === DEFERRED) return;
    const was = row.fulfilledTx as Hex;
    if (settlement.txHash.toLowerCase() === was.toLowerCase() && kind === row.status) {
      await this.#completed(row, was, settlement.settlement);
    } else {
      const now = this.#o.now();
      const resettled = await this.#o.store.resettle(
        row.requestId,
        was,
        settlement.settlement,
        settlement.txHash,
        now,
      );
      if (!resettled) return;
      this.#stats.resettled++;
      this.#o.log?.({
        level: 'warn',
        msg: 'the chain holds another settlement than the one recorded (a reorg); recorded as on chain',
        requestId: row.requestId,
        was: { status: row.status, tx: was },
        now: { status: kind, tx: settlement.txHash },
      });
      await this.#saidIfAnother(row, settlement.txHash, kind);
      row = { ...row, status: kind, fulfilledTx: settlement.txHash, updatedAt: now };
    }
    await this.#finalIf(row, settlement.txHash, settlement.blockNumber, finalized);
  }

  /**
   * A settled row recorded without its settlement's event (neither the receipt nor the event readable
   * then: `callbackOk`, and a refund's reason, unknown) takes them from that settlement (by `tx`), read
   * since from its receipt or event, so the request's view shows them. A row is checked until it is final,
   * and found final only in a check that read one of the two, so none stays without them.
   */
  async #completed(row: ChainRequestRow, tx: Hex, s: ChainSettlement): Promise<void> {
    const lacks = row.callbackOk === null || (row.status === 'refunded' && row.refundReason === null);
    if (!lacks || !(await this.#o.store.completeSettlement(row.requestId, tx, s))) return;
    this.#o.log?.({
      level: 'info',
      msg: "a chain settlement recorded without its event: the callback's outcome read since, recorded",
      requestId: row.requestId,
      tx,
      callbackOk: s.callbackOk,
      ...(s.kind === 'refunded' && s.reason !== null ? { reason: escapeUnshown(s.reason) } : {}),
    });
  }

  /**
   * Mark a settlement by `tx`, mined in `block`, final if it is: at or below the chain's `finalized`
   * block, or, on a chain that names none, recorded `assumeFinalAfterMs` ago.
   */
  async #finalIf(row: ChainRequestRow, tx: Hex, block: bigint, finalized: bigint | null): Promise<void> {
    const now = this.#o.now();
    const final = finalized !== null ? block <= finalized : now - row.updatedAt >= this.#o.assumeFinalAfterMs;
    if (final && (await this.#o.store.markFinal(row.requestId, tx, now))) this.#stats.finalized++;
  }

  /**
   * The block of `tx` and the settlement it made, if its receipt is on the chain and holds this
   * oracle's `kind` settlement of the row.
   */
  async #settledBy(
    row: ChainRequestRow,
    tx: Hex,
    kind: 'fulfilled' | 'refunded',
  ): Promise<{ block: bigint; settlement: ChainSettlement } | null> {
    const receipt = await this.#o.client.getTransactionReceipt({ hash: tx }).catch((e: unknown) => {
      if (e instanceof TransactionReceiptNotFoundError) return null;
      throw e;
    });
    if (receipt?.status !== 'success') return null;
    const settlement = settlementIn(receipt.logs, this.#ref.contract, BigInt(row.requestNo), kind);
    return settlement === null ? null : { block: receipt.blockNumber, settlement };
  }

  /**
   * The oracle's `kind` settlement event of a row's request: its transaction and block, or null. Read
   * from the request's block on in ranges the RPC takes (`#blockRange`, narrowed as the scan narrows it
   * when refused): a request settled long before the watcher looks (a relay that was down past its
   * deadline) is found however far behind the head its settlement lies. At most `maxRangesPerPass`
   * ranges a call: a lookup not done yet goes on from where it stopped at the next call (remembered
   * here, in memory), so each check costs a bounded number of RPC calls and none reads a block twice,
   * but for the last `reorgWindow` blocks (a reorg may mine the settlement again there). At most
   * `SETTLEMENT_SCANS_PER_PASS` lookups a pass: past them, `deferred` (nothing read).
   */
  async #settlementEvent(
    row: ChainRequestRow,
    kind: 'fulfilled' | 'refunded',
  ): Promise<{ txHash: Hex; blockNumber: bigint; settlement: ChainSettlement } | null | typeof DEFERRED> {
    if (this.#scansLeft <= 0) return DEFERRED;
    this.#scansLeft--;
    const head = await this.#o.client.getBlockNumber({ cacheTime: 0 });
    const start = BigInt(row.blockNumber);
    const key = `${row.requestId}:${row.blockNumber}:${kind}`;
    const resumed = this.#settlementScan.get(key);
    let from = resumed !== undefined && resumed > start ? resumed : start;
    // Below the reorg window the chain does not change: blocks read there need not be read again.
    const settledBelow = head - this.#o.reorgWindow + 1n;
    for (let ranges = 0; from <= head && !this.#stopped && ranges < this.#o.maxRangesPerPass; ranges++) {
      const to = from + this.#blockRange - 1n < head ? from + this.#blockRange - 1n : head;
      const events = await this.#o.client
        .getContractEvents({
          address: this.#o.oracle,
          abi: synodOracleAbi,
          eventName: kind === 'fulfilled' ? 'LLMFulfilled' : 'LLMRefunded',
          args: { requestNo: BigInt(row.requestNo) },
          fromBlock: from,
          toBlock: to,
        })
        .catch((e: unknown) => {
          if (to > from && refusedByRpc(e)) return 'refused' as const;
          throw e;
        });
      if (events === 'refused') {
        this.#blockRange = (to - from + 1n) / 2n;
        continue;
      }
      // A request is settled once: the first range that holds its event holds the one.
      const last = events.at(-1);
      if (last?.transactionHash && last.blockNumber !== null) {
        this.#settlementScan.delete(key);
        const args = last.args as { reason?: string; callbackOk?: boolean };
        const callbackOk = args.callbackOk ?? null;
        return {
          txHash: last.transactionHash,
          blockNumber: last.blockNumber,
          settlement:
            kind === 'fulfilled' ? { kind, callbackOk } : { kind, reason: args.reason ?? '', callbackOk },
        };
      }
      from = to + 1n;
    }
    const next = from < settledBelow ? from : settledBelow;
    if (next > start) this.#settlementScan.set(key, next);
    else this.#settlementScan.delete(key);
    return null;
  }

  /** SynodOracle's `Status` of a row's request now. */
  async #onChainStatus(row: ChainRequestRow): Promise<number> {
    const [, , , status] = await this.#o.client.readContract({
      address: this.#o.oracle,
      abi: synodOracleAbi,
      functionName: 'requests',
      args: [BigInt(row.requestNo)],
    });
    return status;
  }

  /**
   * Whether the block a row's event was read from is still the chain's block at that height. A reorg
   * deeper than `reorgWindow` leaves the cursor's block in place and goes unseen by `#scan`; the row
   * itself notices it here, before anything is written on chain for it: the rows from that block on
   * become `reorged` and the cursor goes back to just below it, so the next pass reads those blocks
   * again (an event found again is pending again; another request under the same number is refunded).
   */
  async #stillCanonical(row: ChainRequestRow): Promise<boolean> {
    if ((await this.#reader.blockHash(BigInt(row.blockNumber)))?.toLowerCase() === row.blockHash) return true;
    await this.#lost(
      row,
      'a recorded event is no longer on the chain (a reorg the cursor did not show); reading again',
    );
    return false;
  }

  /**
   * A row's event is not on the chain (as `#stillCanonical` found it, or as the oracle says: it holds
   * another question under the number): the rows from its block on become `reorged` and the cursor goes
   * back to just below it, so the next pass reads those blocks again.
   */
  async #lost(row: ChainRequestRow, msg: string): Promise<void> {
    const height = BigInt(row.blockNumber);
    const now = this.#o.now();
    const reorged = await this.#o.store.markReorged(this.#ref, height, now);
    const below = height > 0n ? height - 1n : 0n;
    const base = await this.#o.client.getBlock({ blockNumber: below });
    await this.#o.store.setCursor(this.#ref, below, base.hash, now);
    this.#reorgSeen();
    this.#o.log?.({ level: 'warn', msg, requestId: row.requestId, block: row.blockNumber, reorged });
  }

  /**
   * A pending row whose request the relay does not have: the event was refused before it was recorded
   * and the refund was not sent (a restart in between). Read the event again and decide afresh.
   */
  async #reconcile(e: OracleRequestEvent): Promise<Settlement> {
    const refused = await this.#admit(e);
    return refused === null ? { kind: 'wait' } : { kind: 'refund', reason: refused };
  }

  /** A recorded row's event, read again from its transaction's receipt (null if it is not there now). */
  async #eventOf(row: ChainRequestRow): Promise<OracleRequestEvent | null> {
    const receipt = await this.#o.client.getTransactionReceipt({ hash: row.txHash as Hex }).catch(() => null);
    const log = receipt?.logs.find((l) => l.logIndex === row.logIndex);
    if (!receipt || !log) return null;
    const decoded = decodeEventLog({ abi: synodOracleAbi, data: log.data, topics: log.topics, strict: true });
    if (decoded.eventName !== 'LLMRequested') return null;
    return oracleRequestEvent(this.#ref, decoded.args, {
      txHash: row.txHash as Hex,
      logIndex: row.logIndex,
      blockNumber: receipt.blockNumber,
      blockHash: receipt.blockHash,
    });
  }

  /**
   * Sign, claim, broadcast the settlement of the row's event `e`, naming its question. True when the
   * settlement was sent (or found already done on chain, or the row found lost).
   */
  async #send(
    row: ChainRequestRow,
    e: OracleRequestEvent,
    s: Exclude<Settlement, { kind: 'wait' }>,
  ): Promise<boolean> {
    // Not the oracle's bridge now: only a refund past its deadline (anyone's to send) would not revert.
    // What is held back is looked up on chain at settlement checks (`#heldBack`).
    if (this.#stats.bridgeMismatch !== null && !(s.kind === 'refund' && (await this.#expired(e)))) {
      return this.#heldBack(row);
    }
    const { client, wallet, oracle } = this.#o;
    const requestNo = BigInt(row.requestNo);
    const data =
      s.kind === 'fulfill'
        ? encodeFunctionData({
            abi: synodOracleAbi,
            functionName: 'fulfill',
            args: [requestNo, e.questionHash, s.answer, s.verdictDigest, s.transcriptRoot],
          })
        : encodeFunctionData({
            abi: synodOracleAbi,
            functionName: 'refund',
            args: [requestNo, e.questionHash, refundReason(s.reason)],
          });
    // A fulfil is simulated with the most gas it may use (`#fulfilGasLimit`): one that cannot fit is
    // refunded ANSWER_TOO_LARGE instead of failing every pass until the deadline.
    const limit = s.kind === 'fulfill' ? await this.#fulfilGasLimit() : undefined;
    try {
      await client.call({ account: wallet.account, to: oracle, data, gas: limit });
    } catch (err) {
      const refused = revertName(err);
      // Settled already (by another watcher, or refunded by anyone after the deadline): record how.
      if (refused === 'NotPending') return (await this.#recordOnChain(row)) === 'recorded';
      // The oracle holds another question under this number: the row's event is gone (a reorg since
      // the canonical check), and whatever now holds the number is read and settled on its own.
      if (refused === 'QuestionMismatch') {
        await this.#lost(
          row,
          'the oracle holds another question under a recorded request number; reading again',
        );
        return true;
      }
      // Not the bridge (any more): the oracle's owner changed it. Read it at once; while it is another
      // account, nothing that would revert is sent (the pass says so, once a spell).
      if (refused === 'NotBridge' || refused === 'NotExpired') {
        await this.#checkBridge();
        if (this.#stats.bridgeMismatch !== null) return false;
      }
      if (s.kind === 'fulfill' && limit !== undefined && (await this.#cannotFit(err, row, e, limit))) {
        return this.#tooLarge(row, e, s, { limit, err });
      }
      throw err;
    }
    let gas: bigint | undefined;
    if (s.kind === 'fulfill' && limit !== undefined) {
      try {
        gas = await client.estimateGas({ account: wallet.account, to: oracle, data });
      } catch (err) {
        if (await this.#cannotFit(err, row, e, limit)) return this.#tooLarge(row, e, s, { limit, err });
        throw err;
      }
      if (gas > limit) return this.#tooLarge(row, e, s, { limit, gas });
    }
    const prepared = await wallet.prepareTransactionRequest({
      account: wallet.account,
      chain: wallet.chain,
      to: oracle,
      data,
      gas,
    });
    const signed = await wallet.signTransaction(prepared);
    const hash = keccak256(signed);
    if (!(await this.#o.store.claim(row.requestId, hash, this.#o.now()))) return false;
    try {
      await wallet.sendRawTransaction({ serializedTransaction: signed });
    } catch (e) {
      await this.#o.store.release(row.requestId, hash, this.#o.now());
      throw e;
    }
    this.#o.log?.({
      level: 'info',
      msg: `chain ${s.kind} sent`,
      requestId: row.requestId,
      tx: hash,
      // Why a refund: an operator reading the log sees QUOTA_EXCEEDED, NO_CONSENSUS, … (escaped: on
      // chain anyone may refund after the deadline, but this one is the relay's own reason).
      ...(s.kind === 'refund' ? { reason: escapeUnshown(s.reason) } : {}),
    });
    if (this.#balance.last?.low) this.#nextBalanceCheck = Number.NEGATIVE_INFINITY;
    // Not waited for here: later passes follow it up (`#followUp`) once it is `confirmations` deep.
    return true;
  }

  /** Whether the request of `e` is past its deadline at the chain's latest block (anyone may refund it). */
  async #expired(e: OracleRequestEvent): Promise<boolean> {
    const { timestamp } = await this.#o.client.getBlock({ blockTag: 'latest' });
    return timestamp > e.deadline;
  }

  /**
   * The most gas a `fulfill` may use now: the chain's block gas limit (of its latest block), or the
   * bridge's own `maxSettlementGas` if lower.
   */
  async #fulfilGasLimit(): Promise<bigint> {
    const { gasLimit } = await this.#o.client.getBlock({ blockTag: 'latest' });
    return fulfilGasLimit(gasLimit, this.#o.maxSettlementGas);
  }

  /**
   * Whether a fulfil's simulation or estimate failed because its answer does not fit in `limit` gas: the
   * node refused it for gas (out of gas, intrinsic gas above the limit, the consumer's callback left
   * short: `InsufficientGasForCallback`), and the same fulfil with an empty answer goes through at the
   * same limit. Both must hold: a refund cannot be undone, so a node that is down, or that says "out of
   * gas" to everything, must not be taken for an answer too large.
   */
  async #cannotFit(
    err: unknown,
    row: ChainRequestRow,
    e: OracleRequestEvent,
    limit: bigint,
  ): Promise<boolean> {
    if (!outOfGas(err)) return false;
    const empty = encodeFunctionData({
      abi: synodOracleAbi,
      functionName: 'fulfill',
      args: [BigInt(row.requestNo), e.questionHash, '', `0x${'00'.repeat(32)}`, `0x${'00'.repeat(32)}`],
    });
    const { client, wallet, oracle } = this.#o;
    return client
      .call({ account: wallet.account, to: oracle, data: empty, gas: limit })
      .then(() => true)
      .catch(() => false);
  }

  /** A verdict whose fulfil cannot fit on the chain: logged, and the request refunded ANSWER_TOO_LARGE. */
  async #tooLarge(
    row: ChainRequestRow,
    e: OracleRequestEvent,
    s: Extract<Settlement, { kind: 'fulfill' }>,
    why: { limit: bigint; gas?: bigint; err?: unknown },
  ): Promise<boolean> {
    this.#o.log?.({
      level: 'warn',
      msg: 'the answer is too large to fulfil on this chain; refunding',
      code: ANSWER_TOO_LARGE,
      requestId: row.requestId,
      answerBytes: new TextEncoder().encode(s.answer).length,
      gasLimit: why.limit.toString(),
      ...(why.gas !== undefined ? { gas: why.gas.toString() } : {}),
      ...(why.err !== undefined ? { err: describe(why.err), revert: revertName(why.err) } : {}),
      hint: 'raise maxSettlementGas if the chain takes it, or ask for fewer maxTokens',
    });
    return this.#send(row, e, { kind: 'refund', reason: ANSWER_TOO_LARGE });
  }

  /** A claimed settlement: confirmed (the row is settled), lost (released to be sent again), or pending. */
  async #followUp(row: ChainRequestRow, hash: Hex): Promise<boolean> {
    const { client, confirmations } = this.#o;
    const receipt = await client.getTransactionReceipt({ hash }).catch(() => null);
    if (receipt === null) {
      const inPool = await client.getTransaction({ hash }).catch(() => null);
      if (inPool !== null) {
        // Waiting: the same call and nonce again, with higher fees, if the chain now asks more; not while
        // another account is the oracle's bridge and it would revert once mined (more fees for nothing).
        if (this.#o.now() - row.updatedAt < this.#o.replaceAfterMs) return false;
        if (this.#stats.bridgeMismatch !== null && (await this.#revertsWhileMismatched(row, inPool))) {
          return false;
        }
        return this.#replace(row, inPool);
      }
      // Never reached the chain (or dropped with a reorg): settled by someone else, or free to send again
      // (not while the settlement is looked for by a later pass: the row keeps its transaction till then).
      const onChain = await this.#recordOnChain(row);
      if (onChain !== 'unsettled') return onChain === 'recorded';
      await this.#o.store.release(row.requestId, hash, this.#o.now());
      return true;
    }
    const head = await client.getBlockNumber({ cacheTime: 0 });
    if (head - receipt.blockNumber < BigInt(confirmations)) return false;
    if (receipt.status !== 'success') {
      const onChain = await this.#recordOnChain(row);
      if (onChain !== 'unsettled') return onChain === 'recorded';
      await this.#o.store.release(row.requestId, hash, this.#o.now());
      return true;
    }
    const settlement = settlementIn(receipt.logs, this.#ref.contract, BigInt(row.requestNo));
    const ours = settlement === null ? undefined : { tx: hash, settlement };
    return (await this.#recordOnChain(row, ours)) === 'recorded';
  }

  /**
   * Whether a settlement this relay sent, still in the mempool, would revert if mined now that another
   * account is the oracle's bridge: a fulfil (`NotBridge`), or a refund before the request's deadline
   * (`NotExpired`). A refund past it goes through whoever sends it. A call it cannot read is not held back.
   */
  async #revertsWhileMismatched(row: ChainRequestRow, tx: Transaction): Promise<boolean> {
    let name: string;
    try {
      name = decodeFunctionData({ abi: synodOracleAbi, data: tx.input }).functionName;
    } catch {
      return false;
    }
    if (name === 'fulfill') return true;
    if (name !== 'refund') return false;
    const [, , deadline] = await this.#o.client.readContract({
      address: this.#o.oracle,
      abi: synodOracleAbi,
      functionName: 'requests',
      args: [BigInt(row.requestNo)],
    });
    const { timestamp } = await this.#o.client.getBlock({ blockTag: 'latest' });
    return timestamp <= deadline;
  }

  /**
   * Re-send a pending settlement with the same nonce and call, and fees `feeBumpPercent` higher (or the
   * chain's current estimate, if higher), when the chain's current fees are above what it offers. One
   * that offers them already is not stuck for its fees (an earlier nonce of the account is missing, or
   * the node is slow to include it): raising them again every `replaceAfterMs` would only multiply what
   * it costs once mined. It is logged instead, with the account's nonce on chain, and looked at again
   * `replaceAfterMs` later. The claim moves to the new hash before it is broadcast; if the node refuses
   * it (the first one was mined meanwhile), the claim goes back to the first hash.
   */
  async #replace(row: ChainRequestRow, tx: Transaction): Promise<boolean> {
    const { client, wallet } = this.#o;
    const pct = BigInt(100 + this.#o.feeBumpPercent);
    const bump = (fee: bigint, now: bigint | undefined) => {
      const raised = (fee * pct + 99n) / 100n;
      return now !== undefined && now > raised ? now : raised;
    };
    const eip1559 = tx.maxFeePerGas !== undefined && tx.maxPriorityFeePerGas !== undefined;
    const current = eip1559
      ? await client.estimateFeesPerGas().catch(() => undefined)
      : await client
          .getGasPrice()
          .then((gasPrice) => ({ gasPrice }))
          .catch(() => undefined);
    const offered = eip1559 ? tx.maxFeePerGas : tx.gasPrice;
    const asked = current && ('maxFeePerGas' in current ? current.maxFeePerGas : current.gasPrice);
    if (asked !== undefined && offered !== undefined && offered >= asked) {
      // Touched, so this is looked at again `replaceAfterMs` from now rather than every pass.
      await this.#o.store.replaceClaim(row.requestId, tx.hash, tx.hash, this.#o.now());
      const accountNonce = await client
        .getTransactionCount({ address: wallet.account.address, blockTag: 'latest' })
        .catch(() => null);
      this.#o.log?.({
        level: 'warn',
        msg: 'a settlement waits in the mempool although its fees are current',
        requestId: row.requestId,
        tx: tx.hash,
        nonce: tx.nonce,
        accountNonce,
        feeWei: offered.toString(),
        chainFeeWei: asked.toString(),
        ...(accountNonce !== null && tx.nonce > accountNonce
          ? {
              hint: 'transactions of the bridge account with lower nonces are not mined yet; if one never reached the chain (another process using the bridge key?), that nonce holds this one back',
            }
          : {}),
      });
      return false;
    }
    const base = {
      account: wallet.account,
      chain: wallet.chain,
      to: tx.to ?? undefined,
      data: tx.input,
      nonce: tx.nonce,
      gas: tx.gas,
    } as const;
    let signed: Hex;
    if (tx.maxFeePerGas !== undefined && tx.maxPriorityFeePerGas !== undefined) {
      const now = current && 'maxFeePerGas' in current ? current : undefined;
      signed = await wallet.signTransaction(
        await wallet.prepareTransactionRequest({
          ...base,
          type: 'eip1559',
          maxFeePerGas: bump(tx.maxFeePerGas, now?.maxFeePerGas),
          maxPriorityFeePerGas: bump(tx.maxPriorityFeePerGas, now?.maxPriorityFeePerGas),
        }),
      );
    } else {
      const now = current && 'gasPrice' in current ? current.gasPrice : undefined;
      signed = await wallet.signTransaction(
        await wallet.prepareTransactionRequest({
          ...base,
          type: 'legacy',
          gasPrice: bump(tx.gasPrice ?? 0n, now),
        }),
      );
    }
    const hash = keccak256(signed);
    if (!(await this.#o.store.replaceClaim(row.requestId, tx.hash, hash, this.#o.now()))) return false;
    try {
      await wallet.sendRawTransaction({ serializedTransaction: signed });
    } catch (e) {
      await this.#o.store.replaceClaim(row.requestId, hash, tx.hash, this.#o.now());
      throw e;
    }
    this.#stats.replaced++;
    this.#o.log?.({
      level: 'info',
      msg: 'chain settlement re-sent with higher fees',
      requestId: row.requestId,
      tx: hash,
      replaces: tx.hash,
    });
    return true;
  }

  /**
   * Mark the row as the oracle says it is settled (by `ours`, or by whichever transaction emitted the
   * settlement event): `recorded`; `unsettled` when the oracle still has it pending (or the node does not
   * show how it was settled); `deferred` when this pass's settlement-event lookups are spent
   * (`SETTLEMENT_SCANS_PER_PASS`): a later pass looks again.
   */
  async #recordOnChain(
    row: ChainRequestRow,
    ours?: { tx: Hex; settlement: ChainSettlement },
  ): Promise<OnChainRecord> {
    const found = await this.#recordedOnChain(row, ours);
    return found === DEFERRED ? DEFERRED : found !== null ? 'recorded' : 'unsettled';
  }

  /**
   * `#recordOnChain`, and the settlement it found on chain (null when the oracle has it pending, or the
   * node does not show it; `deferred` when this pass cannot look for it). One this relay did not send is
   * said (`#saidIfAnother`, with `msg`) as the row takes it.
   */
  async #recordedOnChain(
    row: ChainRequestRow,
    ours?: { tx: Hex; settlement: ChainSettlement },
    msg = SETTLED_BY_ANOTHER,
  ): Promise<{ tx: Hex; settlement: ChainSettlement } | null | typeof DEFERRED> {
    const status = await this.#onChainStatus(row);
    if (status !== ON_CHAIN.fulfilled && status !== ON_CHAIN.refunded) return null;
    const kind = status === ON_CHAIN.fulfilled ? 'fulfilled' : 'refunded';
    const found = ours ?? (await this.#settlementOf(row, kind));
    if (found === null || found === DEFERRED) return found;
    const { tx, settlement } = found;
    if (await this.#o.store.settled(row.requestId, settlement, tx, this.#o.now())) {
      this.#stats[kind]++;
      this.#o.log?.({
        level: 'info',
        msg: `chain request ${kind}`,
        requestId: row.requestId,
        tx,
        ...(settlement.kind === 'refunded' && settlement.reason !== null
          ? { reason: escapeUnshown(settlement.reason) }
          : {}),
      });
      await this.#saidIfAnother(row, tx, kind, msg);
    }
    return found;
  }

  /**
   * A settlement the row just took (by `tx`, of `kind`) that this relay did not send: a warning,
   * `SETTLED_BY_ANOTHER_ACCOUNT`, with its sender when the node tells (`from`, `fromThisAccount`). Said
   * for any transaction but the one the row claimed, except, for a row that claimed one, another of this
   * relay's account (a replacement of its own, or one it had given up for lost and that was mined after
   * all). Said as the row takes the settlement, a conditional update that succeeds once, so once per
   * request (again only if a reorg undoes the settlement and the row takes one anew).
   */
  async #saidIfAnother(
    row: ChainRequestRow,
    tx: Hex,
    kind: 'fulfilled' | 'refunded',
    msg = SETTLED_BY_ANOTHER,
  ): Promise<void> {
    const claimed = row.fulfilledTx;
    if (claimed !== null && claimed.toLowerCase() === tx.toLowerCase()) return;
    const from = await this.#o.client
      .getTransaction({ hash: tx })
      .then((t) => getAddress(t.from))
      .catch(() => null);
    const fromThisAccount = from !== null && isAddressEqual(from, this.#o.wallet.account.address);
    if (claimed !== null && fromThisAccount) return;
    this.#o.log?.({
      level: 'warn',
      msg,
      code: 'SETTLED_BY_ANOTHER_ACCOUNT',
      requestId: row.requestId,
      kind,
      tx,
      ...(from !== null ? { from, fromThisAccount } : {}),
      hint:
        kind === 'fulfilled'
          ? "a fulfil comes only from the oracle's bridge at the time: another relay using this bridge key, or an account the oracle's owner made the bridge (its BridgeChanged events)"
          : "a refund comes from the oracle's bridge at the time (another relay using this bridge key, or an account the oracle's owner made the bridge), or after the request's deadline from anyone, its requester say: this relay had not settled it by then (down or behind, not the bridge, or its own settlement not mined in time)",
    });
  }

  /**
   * The transaction that settled a row's request (`kind`, as the contract holds it) and how: the row's
   * own if its receipt holds the settlement, else the settlement event found on chain, else (the node
   * does not show it yet) the row's own transaction, the reason unknown. `deferred` when the event is
   * to be looked for but this pass's lookups are spent.
   */
  async #settlementOf(
    row: ChainRequestRow,
    kind: 'fulfilled' | 'refunded',
  ): Promise<{ tx: Hex; settlement: ChainSettlement } | null | typeof DEFERRED> {
    const mine = row.fulfilledTx as Hex | null;
    if (mine !== null) {
      const by = await this.#settledBy(row, mine, kind);
      if (by !== null) return { tx: mine, settlement: by.settlement };
    }
    const event = await this.#settlementEvent(row, kind);
    if (event === DEFERRED) return DEFERRED;
    if (event !== null) return { tx: event.txHash, settlement: event.settlement };
    if (mine === null) return null;
    return {
      tx: mine,
      settlement:
        kind === 'fulfilled' ? { kind, callbackOk: null } : { kind, reason: null, callbackOk: null },
    };
  }
}

/**
 * The oracle's (`contract`'s) settlement of `requestNo` among a receipt's logs (of `kind` only, if
 * given): fulfilled, or refunded with its event's reason; null if they hold none.
 */
function settlementIn(
  logs: readonly Log[],
  contract: string,
  requestNo: bigint,
  kind?: 'fulfilled' | 'refunded',
): ChainSettlement | null {
  const events = parseEventLogs({
    abi: synodOracleAbi,
    logs: logs.filter((l) => l.address.toLowerCase() === contract),
  });
  for (const l of events) {
    if (l.eventName === 'LLMFulfilled' && l.args.requestNo === requestNo && kind !== 'refunded')
      return { kind: 'fulfilled', callbackOk: l.args.callbackOk };
    if (l.eventName === 'LLMRefunded' && l.args.requestNo === requestNo && kind !== 'fulfilled')
      return { kind: 'refunded', reason: l.args.reason, callbackOk: l.args.callbackOk };
  }
  return null;
}

/** How `SETTLED_BY_ANOTHER_ACCOUNT` is said, but for a request settled before its event was read. */
const SETTLED_BY_ANOTHER =
  'a chain request was settled on chain by a transaction this relay did not send; recorded as the chain holds it';

/** A row's failing step, as logged, and the line that says it went through again. */
const WORKS_AGAIN = {
  'chain settlement failed': 'chain settlement works again',
  'checking a chain settlement failed': 'checking a chain settlement works again',
} as const;
