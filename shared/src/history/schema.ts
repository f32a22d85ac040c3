/**
 * Quorum history (layer 5): the libSQL tables the edge keeps, as drizzle-orm sqlite-core definitions.
 *
 * Pure definitions: no connection, no I/O. The edge opens the database (a file, `sqld` or Turso) and
 * applies the migrations generated from this file into `shared/drizzle/` (`npm run db:generate`).
 *
 * Conventions
 * - Column names are snake_case in SQL and camelCase in TypeScript.
 * - Times are integer milliseconds since the epoch, like every protocol `createdAt`. A `created_at` of
 *   a packet row is the packet's signed `createdAt`; `updated_at`, `first_seen` and the like are the
 *   relay's clock, passed in by the caller.
 * - Ids, digests, node ids and signatures are lowercase hex, exactly as on the wire.
 * - `raw` is the packet's canonical wire encoding (JCS of the whole signed envelope, see
 *   `encodePacket`), kept byte for byte so any transcript can be re-verified from the history alone.
 *   The other columns of a packet row are projections of `raw`, for queries and indexes.
 * - Every enum is a `text` column with both a TypeScript union and a CHECK constraint, so a wrong value
 *   fails in the database too, not only in the type checker.
 * - Rows that belong to a request cascade on delete, so pruning old history is one `DELETE FROM
 *   requests`. The aggregates (`reputation`, `nodes`) and the metering tables do not depend on it.
 */
import { type SQL, sql } from 'drizzle-orm';
import {
  type AnySQLiteColumn,
  check,
  foreignKey,
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  unique,
  uniqueIndex,
} from 'drizzle-orm/sqlite-core';
import { utf8 } from '../encoding/bytes.ts';
import { sha256Hex } from '../encoding/hash.ts';
import type { Frame } from '../frame/frame.ts';
import {
  type ChatMessage,
  DECLINE_REASONS,
  type HeartbeatBody,
  type InferenceParams,
  type Origin,
  type Packet,
  REJECT_REASONS,
  REQUEST_ID_MAX_CHARS,
  type Verdict,
} from '../packets/schemas.ts';

/**
 * Lifecycle of a request as the relay records it:
 * `pending` (stored, collecting commits) → `sealed` (seal published, collecting reveals) →
 * `verdict` (accepted) | `no-consensus` (verdict published, no cluster large enough).
 * `expired`: `maxTimeMs` passed with fewer than `quorum` valid commits, so it was never sealed.
 * `failed`: the relay gave up for another reason; `requests.error` holds a stable code.
 */
export const REQUEST_STATUSES = [
  'pending',
  'sealed',
  'verdict',
  'no-consensus',
  'expired',
  'failed',
] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export const ORIGIN_KINDS = ['http', 'peer', 'chain'] as const satisfies readonly Origin['kind'][];
export type OriginKind = (typeof ORIGIN_KINDS)[number];

export const VERDICT_STATUSES = ['accepted', 'no-consensus'] as const satisfies readonly Verdict['status'][];
export type VerdictStatus = (typeof VERDICT_STATUSES)[number];

export const ENTRY_OUTCOMES = ['accepted', 'rejected'] as const;
export type EntryOutcome = (typeof ENTRY_OUTCOMES)[number];

export const NODE_ROLES = [
  'node',
  'relay',
  'follower',
  'verifier',
] as const satisfies readonly HeartbeatBody['role'][];
export type NodeRole = (typeof NODE_ROLES)[number];

/**
 * A chain request's settlement: `pending` (seen on chain, not settled), `fulfilled` (result written
 * back), `refunded` (no verdict; the requester's fee returned), `reorged` (the block that held the
 * request event left the canonical chain; the row waits for the event to reappear, when it goes back to
 * `pending` with the new block, or stays `reorged` for good).
 */
export const CHAIN_REQUEST_STATUSES = ['pending', 'fulfilled', 'refunded', 'reorged'] as const;
export type ChainRequestStatus = (typeof CHAIN_REQUEST_STATUSES)[number];

/**
 * A column as it appears inside its own table's CHECK: the bare quoted name. (Interpolating the column
 * object would qualify it with the table name, which breaks when drizzle-kit rebuilds a table under a
 * temporary name in a later migration.)
 */
function c(column: AnySQLiteColumn): SQL {
  return sql`${sql.identifier(column.name)}`;
}

/** `column IN ('a', 'b', ...)`, with the constant values inlined (CHECK constraints take no parameters). */
function oneOf(column: AnySQLiteColumn, values: readonly string[]): SQL {
  for (const v of values) {
    if (!/^[A-Za-z0-9_-]+$/.test(v)) throw new Error(`enum value ${JSON.stringify(v)} cannot be inlined`);
  }
  return sql`${c(column)} in (${sql.raw(values.map((v) => `'${v}'`).join(', '))})`;
}

/** A sha256 in lowercase hex: 64 characters, none outside [0-9a-f]. */
function isHex64(column: AnySQLiteColumn): SQL {
  return sql`length(${c(column)}) = 64 and ${c(column)} not glob '*[^0-9a-f]*'`;
}

/**
 * A request id: 64 lowercase hex, or a chain request's `<chainId>:<0xcontract>:<requestNo>` (the shape
 * only; `CHAIN_REQUEST_ID_RE` is the exact rule, applied before anything is written).
 */
function isRequestId(column: AnySQLiteColumn): SQL {
  const max = sql.raw(String(REQUEST_ID_MAX_CHARS));
  return sql`(${isHex64(column)}) or (length(${c(column)}) <= ${max} and ${c(column)} glob '[0-9]*:0x*:[0-9]*')`;
}

// ---------------------------------------------------------------------------------------------------
// Requests and their transcripts
// ---------------------------------------------------------------------------------------------------

/**
 * One row per accepted request. Durability: the relay inserts this row (in the same transaction as the
 * idempotency row, if any) before it answers 2xx.
 *
 * Triggers (written by hand in migration 0006, drizzle-kit knows none) keep `request_counts` and
 * `request_committers` in step with this table and `commits`, in the same transaction as every write.
 * A later migration that rebuilds `requests` or `commits` (drizzle-kit's `__new_…` copy) drops their
 * triggers with the old table: it must create them again (the tests of both tables then fail).
 */
export const requests = sqliteTable(
  'requests',
  {
    requestId: text('request_id').primaryKey(),
    /** Packet id of the signed request (sha256 of its signed bytes). */
    packetId: text('packet_id').notNull().unique(),
    /** Signer (`from`) of the request packet: the relay, chain watcher or peer that coordinates it. */
    coordinator: text('coordinator').notNull(),
    /** Exactly one of `prompt` and `messages` is set. */
    prompt: text('prompt'),
    messages: text('messages', { mode: 'json' }).$type<ChatMessage[]>(),
    acceptedModels: text('accepted_models', { mode: 'json' }).$type<string[]>().notNull(),
    params: text('params', { mode: 'json' }).$type<InferenceParams>().notNull(),
    frame: text('frame', { mode: 'json' }).$type<Frame>().notNull(),
    originKind: text('origin_kind', { enum: ORIGIN_KINDS }).notNull(),
    /** Chain origin only (all set when `origin_kind = 'chain'`, all null otherwise). */
    chainId: integer('chain_id'),
    contract: text('contract'),
    /** uint256 in decimal: too wide for an integer column. */
    requestNo: text('request_no'),
    txHash: text('tx_hash'),
    blockNumber: integer('block_number'),
    status: text('status', { enum: REQUEST_STATUSES }).notNull().default('pending'),
    /** Stable error code when `status` is `failed` or `expired`. */
    error: text('error'),
    /** The request packet's signed `createdAt`. History pages are ordered by (created_at, request_id). */
    createdAt: integer('created_at').notNull(),
    /** Relay clock at the last status change. */
    updatedAt: integer('updated_at').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    index('requests_created_idx').on(t.createdAt, t.requestId),
    index('requests_status_created_idx').on(t.status, t.createdAt, t.requestId),
    index('requests_coordinator_created_idx').on(t.coordinator, t.createdAt, t.requestId),
    index('requests_origin_created_idx').on(t.originKind, t.createdAt, t.requestId),
    // Target of the seal's composite foreign key (a seal names both the request id and its packet id).
    uniqueIndex('requests_id_packet_uq').on(t.requestId, t.packetId),
    check('requests_status_ck', oneOf(t.status, REQUEST_STATUSES)),
    check('requests_origin_kind_ck', oneOf(t.originKind, ORIGIN_KINDS)),
    check('requests_prompt_xor_messages_ck', sql`(${c(t.prompt)} is null) <> (${c(t.messages)} is null)`),
    check(
      'requests_chain_origin_ck',
      sql`(${c(t.originKind)} = 'chain' and ${c(t.chainId)} is not null and ${c(t.contract)} is not null and ${c(t.requestNo)} is not null and ${c(t.txHash)} is not null and ${c(t.blockNumber)} is not null)
        or (${c(t.originKind)} <> 'chain' and ${c(t.chainId)} is null and ${c(t.contract)} is null and ${c(t.requestNo)} is null and ${c(t.txHash)} is null and ${c(t.blockNumber)} is null)`,
    ),
  ],
);

/**
 * The request's `acceptedModels`, one row each, so the history can be filtered by model with an index
 * (a JSON array cannot be indexed). `created_at` is copied from the request for keyset paging.
 */
export const requestModels = sqliteTable(
  'request_models',
  {
    requestId: text('request_id')
      .notNull()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    modelId: text('model_id').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'request_models_pk', columns: [t.requestId, t.modelId] }),
    index('request_models_model_created_idx').on(t.modelId, t.createdAt, t.requestId),
  ],
);

/**
 * The nodes that committed to a request, one row per (request, node) however many commits it sent, so
 * the history can be read by node through an index in the request's own order (`commits.created_at` is
 * the commit's). `created_at` is the request's. Filled by a trigger on `commits` (migration 0006), so
 * every writer keeps it, whatever its version; the rows go with their request.
 */
export const requestCommitters = sqliteTable(
  'request_committers',
  {
    requestId: text('request_id')
      .notNull()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    nodeId: text('node_id').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'request_committers_pk', columns: [t.requestId, t.nodeId] }),
    index('request_committers_node_created_idx').on(t.nodeId, t.createdAt, t.requestId),
  ],
);

/**
 * How many requests the history holds in each status, kept by triggers on `requests` (migration 0006)
 * in the same transaction as every insert, status change and delete, so reading them (`/healthz`,
 * `/metrics`) costs six rows however long the history is, and every relay over the database reads the
 * same numbers. A status with no row has none.
 */
export const requestCounts = sqliteTable(
  'request_counts',
  {
    status: text('status', { enum: REQUEST_STATUSES }).primaryKey(),
    n: integer('n').notNull().default(0),
  },
  (t) => [check('request_counts_status_ck', oneOf(t.status, REQUEST_STATUSES))],
);

/**
 * Every valid commit received, sealed or not. One node may appear with two different commitments for one
 * request: that pair is evidence of equivocation and is kept. The same commitment re-sent (a new packet
 * with another `createdAt`) is a duplicate: unique (request_id, node_id, commitment).
 */
export const commits = sqliteTable(
  'commits',
  {
    packetId: text('packet_id').primaryKey(),
    requestId: text('request_id')
      .notNull()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    nodeId: text('node_id').notNull(),
    commitment: text('commitment').notNull(),
    createdAt: integer('created_at').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    unique('commits_request_node_commitment_uq').on(t.requestId, t.nodeId, t.commitment),
    // Target of seal_members' composite foreign key: a member must be exactly a stored commit.
    uniqueIndex('commits_member_ref_uq').on(t.packetId, t.requestId, t.nodeId, t.commitment),
    index('commits_node_created_idx').on(t.nodeId, t.createdAt),
  ],
);

/** At most one seal per request. */
export const seals = sqliteTable(
  'seals',
  {
    packetId: text('packet_id').primaryKey(),
    requestId: text('request_id').notNull().unique(),
    /** The seal body's `requestPacketId`: the request packet this seal closes. */
    requestPacketId: text('request_packet_id').notNull(),
    /** Signer of the seal. */
    coordinator: text('coordinator').notNull(),
    memberCount: integer('member_count').notNull(),
    createdAt: integer('created_at').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    foreignKey({
      name: 'seals_request_fk',
      columns: [t.requestId, t.requestPacketId],
      foreignColumns: [requests.requestId, requests.packetId],
    }).onDelete('cascade'),
    check('seals_member_count_ck', sql`${c(t.memberCount)} >= 1`),
  ],
);

/** The sealed members, one row per node; each must be a commit stored in `commits`. */
export const sealMembers = sqliteTable(
  'seal_members',
  {
    requestId: text('request_id')
      .notNull()
      .references(() => seals.requestId, { onDelete: 'cascade' }),
    nodeId: text('node_id').notNull(),
    commitment: text('commitment').notNull(),
    /** Packet id of the member's commit. */
    commitId: text('commit_id').notNull().unique(),
  },
  (t) => [
    primaryKey({ name: 'seal_members_pk', columns: [t.requestId, t.nodeId] }),
    foreignKey({
      name: 'seal_members_commit_fk',
      columns: [t.commitId, t.requestId, t.nodeId, t.commitment],
      foreignColumns: [commits.packetId, commits.requestId, commits.nodeId, commits.commitment],
    }),
    index('seal_members_node_idx').on(t.nodeId, t.requestId),
  ],
);

/**
 * Every reveal received, valid or not (a verdict's rejected entries name them by packet id). No
 * foreign key to seal_members: a reveal from a node that was not sealed is kept as evidence
 * (`NOT_SEALED`), and a member may reveal twice (`DUPLICATE_REVEAL`).
 */
export const reveals = sqliteTable(
  'reveals',
  {
    packetId: text('packet_id').primaryKey(),
    requestId: text('request_id')
      .notNull()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    nodeId: text('node_id').notNull(),
    modelId: text('model_id').notNull(),
    modelFileHash: text('model_file_hash').notNull(),
    /** sha256 of the UTF-8 output, as bound into the commitment. */
    outputDigest: text('output_digest').notNull(),
    output: text('output').notNull(),
    /** Packed sign bits, lowercase hex. */
    bEmbedding: text('b_embedding').notNull(),
    createdAt: integer('created_at').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    index('reveals_request_node_idx').on(t.requestId, t.nodeId),
    index('reveals_node_created_idx').on(t.nodeId, t.createdAt),
    index('reveals_model_created_idx').on(t.modelId, t.createdAt),
  ],
);

/** The coordinator's verdict, one per request, with the winner projected out for queries. */
export const verdicts = sqliteTable(
  'verdicts',
  {
    requestId: text('request_id')
      .primaryKey()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    packetId: text('packet_id').notNull().unique(),
    /** The seal the verdict was computed over. */
    sealId: text('seal_id')
      .notNull()
      .references(() => seals.packetId, { onDelete: 'cascade' }),
    /** Signer of the verdict packet. */
    coordinator: text('coordinator').notNull(),
    status: text('status', { enum: VERDICT_STATUSES }).notNull(),
    verdictDigest: text('verdict_digest').notNull(),
    transcriptRoot: text('transcript_root').notNull(),
    /** Winner columns: all set when `status = 'accepted'`, all null for `no-consensus`. */
    winnerNodeId: text('winner_node_id'),
    winnerCommitment: text('winner_commitment'),
    winnerOutputDigest: text('winner_output_digest'),
    winnerModelId: text('winner_model_id'),
    winnerModelFileHash: text('winner_model_file_hash'),
    sealSize: integer('seal_size').notNull(),
    /** Agreeing reveals needed: ceil(secPercentage × sealSize). */
    required: integer('required').notNull(),
    createdAt: integer('created_at').notNull(),
    verdict: text('verdict', { mode: 'json' }).$type<Verdict>().notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    index('verdicts_status_created_idx').on(t.status, t.createdAt, t.requestId),
    index('verdicts_winner_node_created_idx').on(t.winnerNodeId, t.createdAt),
    index('verdicts_winner_model_created_idx').on(t.winnerModelId, t.createdAt),
    index('verdicts_digest_idx').on(t.verdictDigest),
    check('verdicts_status_ck', oneOf(t.status, VERDICT_STATUSES)),
    check(
      'verdicts_winner_ck',
      sql`(${c(t.status)} = 'accepted' and ${c(t.winnerNodeId)} is not null and ${c(t.winnerCommitment)} is not null and ${c(t.winnerOutputDigest)} is not null and ${c(t.winnerModelId)} is not null and ${c(t.winnerModelFileHash)} is not null)
        or (${c(t.status)} = 'no-consensus' and ${c(t.winnerNodeId)} is null and ${c(t.winnerCommitment)} is null and ${c(t.winnerOutputDigest)} is null and ${c(t.winnerModelId)} is null and ${c(t.winnerModelFileHash)} is null)`,
    ),
    check(
      'verdicts_required_ck',
      sql`${c(t.sealSize)} >= 1 and ${c(t.required)} >= 1 and ${c(t.required)} <= ${c(t.sealSize)}`,
    ),
  ],
);

/**
 * A verdict flattened for reputation queries: one row per entry of `verdict.accepted` (outcome
 * `accepted`) and `verdict.rejected` (outcome `rejected`, with its reason), numbered by `ordinal` in that
 * order (see `verdictEntries`). A node can have more than one row in a verdict (an accepted reveal and a
 * `DUPLICATE_REVEAL`; two `NOT_SEALED` reveals), so the key is the position, which is deterministic
 * because the verdict itself is. (Exported as `verdictEntriesTable`: `verdictEntries` is the function
 * that builds its rows from a verdict.)
 */
export const verdictEntriesTable = sqliteTable(
  'verdict_entries',
  {
    requestId: text('request_id')
      .notNull()
      .references(() => verdicts.requestId, { onDelete: 'cascade' }),
    ordinal: integer('ordinal').notNull(),
    nodeId: text('node_id').notNull(),
    /** Null only for a rejected reveal whose commitment is unknown (e.g. `NOT_SEALED`). */
    commitment: text('commitment'),
    /** Packet id of the rejected reveal, when there was one. */
    revealId: text('reveal_id'),
    outcome: text('outcome', { enum: ENTRY_OUTCOMES }).notNull(),
    /** Null exactly when `outcome = 'accepted'`. */
    reason: text('reason', { enum: REJECT_REASONS }),
    /** This entry is the verdict's winner. */
    winner: integer('winner', { mode: 'boolean' }).notNull().default(false),
  },
  (t) => [
    primaryKey({ name: 'verdict_entries_pk', columns: [t.requestId, t.ordinal] }),
    index('verdict_entries_node_outcome_idx').on(t.nodeId, t.outcome, t.reason),
    index('verdict_entries_node_request_idx').on(t.nodeId, t.requestId),
    check('verdict_entries_ordinal_ck', sql`${c(t.ordinal)} >= 0`),
    check('verdict_entries_outcome_ck', oneOf(t.outcome, ENTRY_OUTCOMES)),
    check(
      'verdict_entries_reason_ck',
      sql`(${c(t.outcome)} = 'accepted' and ${c(t.reason)} is null and ${c(t.commitment)} is not null)
        or (${c(t.outcome)} = 'rejected' and ${c(t.reason)} is not null and ${oneOf(t.reason, REJECT_REASONS)} and ${c(t.winner)} = 0)`,
    ),
  ],
);

/**
 * Signed attestations of a verdict digest by verifiers, one per node per request. `verdict_digest` is
 * not a foreign key: an attestation that disagrees with the coordinator's verdict is evidence too.
 */
export const attestations = sqliteTable(
  'attestations',
  {
    packetId: text('packet_id').primaryKey(),
    requestId: text('request_id')
      .notNull()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    nodeId: text('node_id').notNull(),
    verdictDigest: text('verdict_digest').notNull(),
    transcriptRoot: text('transcript_root').notNull(),
    createdAt: integer('created_at').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    unique('attestations_request_node_uq').on(t.requestId, t.nodeId),
    index('attestations_node_created_idx').on(t.nodeId, t.createdAt),
  ],
);

/**
 * Signed declines (`decline` packets): nodes that took a request and found they cannot run it with their
 * model (e.g. a prompt longer than its context window), one per node per request. What a request that
 * ended `DECLINED` was told, and by whom.
 */
export const declines = sqliteTable(
  'declines',
  {
    packetId: text('packet_id').primaryKey(),
    requestId: text('request_id')
      .notNull()
      .references(() => requests.requestId, { onDelete: 'cascade' }),
    nodeId: text('node_id').notNull(),
    modelId: text('model_id').notNull(),
    modelFileHash: text('model_file_hash').notNull(),
    reason: text('reason').notNull(),
    promptTokens: integer('prompt_tokens').notNull(),
    contextTokens: integer('context_tokens').notNull(),
    createdAt: integer('created_at').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    unique('declines_request_node_uq').on(t.requestId, t.nodeId),
    check('declines_reason_ck', oneOf(t.reason, DECLINE_REASONS)),
  ],
);

// ---------------------------------------------------------------------------------------------------
// Nodes and reputation
// ---------------------------------------------------------------------------------------------------

/** Nodes as last heard from: the latest heartbeat wins. */
export const nodes = sqliteTable(
  'nodes',
  {
    nodeId: text('node_id').primaryKey(),
    role: text('role', { enum: NODE_ROLES }).notNull(),
    software: text('software').notNull(),
    /** The whole signed heartbeat packet, so its signature can be checked again. */
    lastHeartbeat: text('last_heartbeat', { mode: 'json' }).$type<Packet<'heartbeat'>>().notNull(),
    lastHeartbeatId: text('last_heartbeat_id').notNull(),
    models: text('models', { mode: 'json' }).$type<HeartbeatBody['models']>().notNull(),
    embedders: text('embedders', { mode: 'json' }).$type<HeartbeatBody['embedders']>().notNull(),
    /** Best advertised tokens/s over the node's models (0 with none). */
    tokensPerSecond: real('tokens_per_second').notNull(),
    /** Best advertised embeddings/s over the node's embedders (0 with none). */
    embeddingsPerSecond: real('embeddings_per_second').notNull(),
    /** Relay clock. */
    firstSeen: integer('first_seen').notNull(),
    lastSeen: integer('last_seen').notNull(),
  },
  (t) => [
    index('nodes_last_seen_idx').on(t.lastSeen),
    index('nodes_role_last_seen_idx').on(t.role, t.lastSeen),
    check('nodes_role_ck', oneOf(t.role, NODE_ROLES)),
    check('nodes_seen_ck', sql`${c(t.firstSeen)} <= ${c(t.lastSeen)}`),
    check('nodes_rates_ck', sql`${c(t.tokensPerSecond)} >= 0 and ${c(t.embeddingsPerSecond)} >= 0`),
  ],
);

/**
 * Per-node counters, derived from the history (verdict_entries, commits, invalid packets seen) and
 * kept as an aggregate so lookups are one row. No foreign key to `nodes`: a node can earn a record
 * by committing before any heartbeat of it is stored. `score` is `reputationScore(row)`.
 */
export const reputation = sqliteTable(
  'reputation',
  {
    nodeId: text('node_id').primaryKey(),
    /** Accepted entries: the node's reveal was in the winning cluster. */
    agreements: integer('agreements').notNull().default(0),
    /** Valid reveals outside the winning cluster. */
    disagreements: integer('disagreements').notNull().default(0),
    /** Sealed but never revealed in time (`NOT_REVEALED`, `REVEAL_LATE`). */
    withheld: integer('withheld').notNull().default(0),
    /** Invalid packets: commitment mismatches, unaccepted models, bad embeddings, unsealed or duplicate reveals. */
    invalid: integer('invalid').notNull().default(0),
    /** Verdicts that named the node (it took part in the request: a seal member, or a revealer with a record). */
    commits: integer('commits').notNull().default(0),
    /** How many latencies `mean_latency_ms` averages; the mean is null while this is 0. */
    latencySamples: integer('latency_samples').notNull().default(0),
    meanLatencyMs: real('mean_latency_ms'),
    /** `reputationScore` of the counters, in [0, 1]. */
    score: real('score').notNull().default(0),
    updatedAt: integer('updated_at').notNull(),
    /**
     * Agreements vouched for: in accepted verdicts whose accepted set held another node proven (or
     * trusted) at the time. Only these make a node proven for the relay's seat policy: keys of one party
     * agreeing among themselves, on requests no proven node served, earn none.
     */
    vouched: integer('vouched').notNull().default(0),
  },
  (t) => [
    index('reputation_score_idx').on(t.score),
    index('reputation_vouched_idx').on(t.vouched),
    check(
      'reputation_counts_ck',
      sql`${c(t.agreements)} >= 0 and ${c(t.disagreements)} >= 0 and ${c(t.withheld)} >= 0 and ${c(t.invalid)} >= 0 and ${c(t.commits)} >= 0 and ${c(t.latencySamples)} >= 0`,
    ),
    check('reputation_score_ck', sql`${c(t.score)} >= 0 and ${c(t.score)} <= 1`),
    check(
      'reputation_latency_ck',
      sql`(${c(t.latencySamples)} = 0 and ${c(t.meanLatencyMs)} is null) or (${c(t.latencySamples)} > 0 and ${c(t.meanLatencyMs)} >= 0)`,
    ),
  ],
);

/**
 * The nodes with a record (`reputation`) and no heartbeat stored (`nodes`): a seat needs no heartbeat,
 * and `/v1/nodes` lists them too, by when their record last changed, through this table's index rather
 * than a scan of every record. Kept by triggers (migration 0012): a record made for a node not heard
 * adds it, a change of the record moves its time, its first heartbeat removes it. A later migration
 * that rebuilds `reputation` or `nodes` drops those triggers with the old table: it must create them
 * again (the tests of `/v1/nodes` then fail).
 */
export const unheardNodes = sqliteTable(
  'unheard_nodes',
  {
    nodeId: text('node_id').primaryKey(),
    /** The record's `updated_at`. */
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('unheard_nodes_updated_idx').on(t.updatedAt, t.nodeId)],
);

// ---------------------------------------------------------------------------------------------------
// API keys, metering, idempotency
// ---------------------------------------------------------------------------------------------------

/** API keys. Only the sha256 of a key is stored, never the key: the CHECK refuses anything else. */
export const apiKeys = sqliteTable(
  'api_keys',
  {
    /** Public key id (shown in dashboards and logs). */
    id: text('id').primaryKey(),
    /** Lowercase hex sha256 of the secret key. */
    hash: text('hash').notNull().unique(),
    label: text('label').notNull(),
    /** Requests allowed per UTC day. */
    quotaPerDay: integer('quota_per_day').notNull(),
    createdAt: integer('created_at').notNull(),
    /** Null while the key is live. */
    revokedAt: integer('revoked_at'),
  },
  (t) => [
    check('api_keys_hash_ck', isHex64(t.hash)),
    check('api_keys_quota_ck', sql`${c(t.quotaPerDay)} >= 0`),
  ],
);

/**
 * Requests metered per caller per UTC day (`YYYY-MM-DD`); incremented with an upsert. A caller is an
 * API key id or, for keyless signed requests, `node:<node id>`, so `key_id` has no foreign key to
 * `api_keys` (revoking a key stops new requests; its history stays).
 */
export const usage = sqliteTable(
  'usage',
  {
    /** The caller: an API key id (`key_…`) or a signed-request signer (`node:<node id>`); no FK, see above. */
    keyId: text('key_id').notNull(),
    day: text('day').notNull(),
    count: integer('count').notNull().default(0),
  },
  (t) => [
    primaryKey({ name: 'usage_pk', columns: [t.keyId, t.day] }),
    check('usage_day_ck', sql`${c(t.day)} glob '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'`),
    check('usage_count_ck', sql`${c(t.count)} >= 0`),
  ],
);

/**
 * `Idempotency-Key` of an HTTP request: a retry with the same key returns the stored request. The
 * digest of the submitted body tells a retry from a different request reusing the key (which the edge
 * refuses). Inserted in the same transaction as the request's `request_intake` row, so `request_id`
 * has no foreign key: the request reaches `requests` only when its coordinator dispatches it.
 */
export const idempotency = sqliteTable(
  'idempotency',
  {
    /** The caller, as in `usage.key_id`. */
    keyId: text('key_id').notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    requestId: text('request_id').notNull(),
    /** sha256 (hex) of the submitted body, canonicalized by the edge. */
    bodyDigest: text('body_digest').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    primaryKey({ name: 'idempotency_pk', columns: [t.keyId, t.idempotencyKey] }),
    index('idempotency_request_idx').on(t.requestId),
    index('idempotency_created_idx').on(t.createdAt),
    check('idempotency_key_ck', sql`length(${c(t.idempotencyKey)}) between 1 and 255`),
    check('idempotency_body_digest_ck', isHex64(t.bodyDigest)),
  ],
);

/** Rows per block of `request_intake_lookup_idx` (`seq >> INTAKE_BLOCK_BITS`). */
export const INTAKE_BLOCK_BITS = 10;

/**
 * The relay's admission log: an HTTP request accepted but not yet dispatched to the network. The edge
 * answers 202 once the row is committed (group commit: one transaction for every request that arrived
 * while the previous one was committing, with their quota counts and idempotency rows). The coordinator
 * named in the row later signs the request, moves it into `requests` (deleting this row in the same
 * transaction) and coordinates it, as many at a time as its window allows; a row whose `deadline`
 * passes first moves to `requests` as `expired` with error `QUEUE_TIMEOUT`.
 *
 * Append-only and lean on purpose, because it is on the accept path: the rowid `seq` orders it, and
 * `request_intake_lookup_idx` finds a queued request by id. That index is on (`seq >> 10`, `id_prefix`)
 * (`id_prefix`: the first 52 bits of the request id), not on `id_prefix` alone: new rows then land in
 * the newest block of 1,024 rows instead of at random places of one big tree, which cuts the pages each
 * commit writes (the accept path ran about 1.4x faster per request in edge/bench). A lookup probes
 * every block between the oldest and the newest queued row (`INTAKE_BLOCK_BITS`, `IntakeStore.queued`).
 */
export const requestIntake = sqliteTable(
  'request_intake',
  {
    seq: integer('seq').primaryKey(),
    /** The first 52 bits of the request id (of its sha256, for a chain request): see `intakeIdPrefix`. */
    idPrefix: integer('id_prefix').notNull(),
    requestId: text('request_id').notNull(),
    /** Node id of the relay (or gateway) that will sign and coordinate the request. */
    coordinator: text('coordinator').notNull(),
    /** The caller charged for it (as in `usage.key_id`). */
    callerId: text('caller_id').notNull(),
    /** The request body (JSON), exactly as it will be signed. */
    body: text('body').notNull(),
    /** The body's `createdAt`. */
    createdAt: integer('created_at').notNull(),
    /** `createdAt + frame.maxTimeMs`: dispatched after this, it could never be sealed. */
    deadline: integer('deadline').notNull(),
  },
  (t) => [
    index('request_intake_lookup_idx').on(
      sql`(${c(t.seq)} >> ${sql.raw(String(INTAKE_BLOCK_BITS))})`,
      t.idPrefix,
    ),
    index('request_intake_coordinator_idx').on(t.coordinator, t.seq),
    check('request_intake_request_id_ck', isRequestId(t.requestId)),
  ],
);

/**
 * Each coordinator's lease on its rows of the admission log: its dispatcher renews it every few seconds
 * (`renewed_at`, ms) and sets it to 0 when it stops. Rows of a coordinator whose lease went stale (it
 * crashed, or stopped) are taken over by another relay over the database (their `coordinator` set to
 * that relay's), which then signs and coordinates them; a coordinator with no lease row is never taken
 * over (its rows expire as abandoned well past their deadline instead).
 */
export const coordinatorLeases = sqliteTable(
  'coordinator_leases',
  {
    coordinator: text('coordinator').primaryKey(),
    renewedAt: integer('renewed_at').notNull(),
  },
  (t) => [check('coordinator_leases_coordinator_ck', isHex64(t.coordinator))],
);

/**
 * This database's identity: one row, a random id (32 hex digits) made by the migration that created the
 * table, so every relay over the database (its embedded replicas included) reads the same id, and a
 * relay over another database another one. A relay on workerd compares it with its gateway's (published
 * in the gateway's status) to find a gateway that dispatches from another database at once. A copy of the
 * database file keeps the id of the database it was copied from.
 */
export const databaseIdentity = sqliteTable(
  'database_identity',
  {
    singleton: integer('singleton').primaryKey(),
    id: text('id').notNull(),
  },
  (t) => [
    check('database_identity_singleton_ck', sql`${c(t.singleton)} = 1`),
    check('database_identity_id_ck', sql`length(${c(t.id)}) = 32 and ${c(t.id)} not glob '*[^0-9a-f]*'`),
  ],
);

/**
 * One row per relay key (its coordinator id): the write a relay's `/healthz` tries, once admissions have
 * failed (a full disk, a database that refuses writes) and none has been stored for a while, to find
 * whether the database takes writes again before traffic comes back (a relay its load balancer took out
 * of rotation is sent no admission that would tell). Nothing reads it but that write.
 */
export const healthProbes = sqliteTable(
  'health_probes',
  {
    relay: text('relay').primaryKey(),
    probedAt: integer('probed_at').notNull(),
  },
  (t) => [check('health_probes_relay_ck', isHex64(t.relay))],
);

/**
 * The `id_prefix` of a request id: its first 13 hex digits, as a safe integer. A chain request id
 * (`<chainId>:<contract>:<requestNo>`, not hex) takes those of its sha256 instead, so the requests of one
 * contract spread over the index like any others.
 */
export function intakeIdPrefix(requestId: string): number {
  const hex = /^[0-9a-f]{64}$/.test(requestId) ? requestId : sha256Hex(utf8(requestId));
  return Number.parseInt(hex.slice(0, 13), 16);
}

// ---------------------------------------------------------------------------------------------------
// Chain bridge
// ---------------------------------------------------------------------------------------------------

/**
 * On-chain requests seen by the chain watcher, keyed like the contract keys them, so each is fulfilled
 * or refunded exactly once across restarts and reorgs: the watcher upserts on the key, and settles only
 * a `pending` row, in a conditional update (`... where status = 'pending'`). The settling tx hash is
 * written before the tx is broadcast, so a restart finds it and waits for it instead of sending again.
 *
 * `request_id` is `<chainId>:<contract>:<requestNo>` (the CHECK enforces it). It is not a foreign key
 * to `requests`: a chain request that fails validation is never stored as a request, and is refunded.
 */
export const chainRequests = sqliteTable(
  'chain_requests',
  {
    chainId: integer('chain_id').notNull(),
    /** Lowercase 0x address. */
    contract: text('contract').notNull(),
    /** uint256 in decimal. */
    requestNo: text('request_no').notNull(),
    requestId: text('request_id').notNull().unique(),
    /** Transaction, log index and block of the request event. */
    txHash: text('tx_hash').notNull(),
    logIndex: integer('log_index').notNull(),
    blockNumber: integer('block_number').notNull(),
    blockHash: text('block_hash').notNull(),
    status: text('status', { enum: CHAIN_REQUEST_STATUSES }).notNull().default('pending'),
    /** Hash of the settling tx (the fulfil call, or the refund call). Set before it is broadcast. */
    fulfilledTx: text('fulfilled_tx'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    /**
     * When the watcher found the settlement final: its block at or below the chain's `finalized` block
     * (or, on a chain that names none, old enough). Until then a reorg may undo it, and it is checked.
     */
    finalizedAt: integer('finalized_at'),
    /**
     * A refunded request's reason, as the oracle's `LLMRefunded` event of `fulfilledTx` gives it (read
     * from that event, whoever sent the refund). Null while not refunded, and for refunds recorded before
     * it was kept (their event holds it).
     */
    refundReason: text('refund_reason'),
    /**
     * When `history prune` deleted the request this relay ran for it (migration 0016): its 404 then says
     * so, not that it was never run. Null for one still held, or never run here.
     */
    prunedAt: integer('pruned_at'),
    /**
     * Whether the consumer's callback ran without failing, as the settlement's `LLMFulfilled` or
     * `LLMRefunded` event of `fulfilledTx` gives it (true also for a requester without code, where none
     * ran). Null while not settled, while that event is not read, and for settlements recorded before it
     * was kept (migration 0018; their event holds it).
     */
    callbackOk: integer('callback_ok', { mode: 'boolean' }),
  },
  (t) => [
    primaryKey({ name: 'chain_requests_pk', columns: [t.chainId, t.contract, t.requestNo] }),
    // Only the settlements still to be watched: small, whatever the history holds.
    index('chain_requests_unfinal_idx')
      .on(t.chainId, t.contract, t.updatedAt)
      .where(sql`${c(t.status)} in ('fulfilled', 'refunded') and ${c(t.finalizedAt)} is null`),
    // Not unique: after a reorg the same transaction and log index can carry another request number.
    index('chain_requests_event_idx').on(t.chainId, t.txHash, t.logIndex),
    index('chain_requests_status_block_idx').on(t.status, t.blockNumber),
    check('chain_requests_status_ck', oneOf(t.status, CHAIN_REQUEST_STATUSES)),
    check(
      'chain_requests_settled_ck',
      sql`${c(t.status)} not in ('fulfilled', 'refunded') or ${c(t.fulfilledTx)} is not null`,
    ),
    check(
      'chain_requests_request_no_ck',
      sql`length(${c(t.requestNo)}) between 1 and 78 and ${c(t.requestNo)} not glob '*[^0-9]*'`,
    ),
    check(
      'chain_requests_request_id_ck',
      sql`${c(t.requestId)} = cast(${c(t.chainId)} as text) || ':' || ${c(t.contract)} || ':' || ${c(t.requestNo)}`,
    ),
  ],
);

/**
 * How many oracle requests `chain_requests` holds in each status, of every oracle, kept by triggers on
 * `chain_requests` (migration 0007) in the transaction of every insert, status change and delete, so
 * `/metrics` reads four rows however many requests the oracles have had (a count over the table took
 * 30 ms on a million). A status with no row has none.
 */
export const chainRequestCounts = sqliteTable(
  'chain_request_counts',
  {
    status: text('status', { enum: CHAIN_REQUEST_STATUSES }).primaryKey(),
    n: integer('n').notNull().default(0),
  },
  (t) => [check('chain_request_counts_status_ck', oneOf(t.status, CHAIN_REQUEST_STATUSES))],
);

/**
 * How far the chain watcher has read an oracle's events: every `LLMRequested` up to and including this
 * block (already `confirmations` deep when read) is in `chain_requests`, or, when `log_index` is set
 * (a pass's budget of events ended inside the block, migration 0010), those of the block up to and
 * including that log index, the next pass going on in the same block. The block hash lets the watcher
 * see a reorg deeper than its confirmation depth: when the block at `block_number` no longer has this
 * hash, it walks back to a block it still agrees on and reads again from there.
 */
export const chainCursors = sqliteTable(
  'chain_cursors',
  {
    chainId: integer('chain_id').notNull(),
    /** Lowercase 0x address of the oracle. */
    contract: text('contract').notNull(),
    blockNumber: integer('block_number').notNull(),
    blockHash: text('block_hash').notNull(),
    updatedAt: integer('updated_at').notNull(),
    /**
     * The last event read in the block when it was read only in part; null when it was read whole. Last
     * of the columns, where migration 0010's ALTER TABLE added it.
     */
    logIndex: integer('log_index'),
  },
  (t) => [
    primaryKey({ name: 'chain_cursors_pk', columns: [t.chainId, t.contract] }),
    check('chain_cursors_block_ck', sql`${c(t.blockNumber)} >= 0`),
  ],
);

// ---------------------------------------------------------------------------------------------------
// Row types
// ---------------------------------------------------------------------------------------------------

export type RequestRow = typeof requests.$inferSelect;
export type NewRequestRow = typeof requests.$inferInsert;
export type RequestModelRow = typeof requestModels.$inferSelect;
export type NewRequestModelRow = typeof requestModels.$inferInsert;
export type RequestCommitterRow = typeof requestCommitters.$inferSelect;
export type RequestCountRow = typeof requestCounts.$inferSelect;
export type CommitRow = typeof commits.$inferSelect;
export type NewCommitRow = typeof commits.$inferInsert;
export type SealRow = typeof seals.$inferSelect;
export type NewSealRow = typeof seals.$inferInsert;
export type SealMemberRow = typeof sealMembers.$inferSelect;
export type NewSealMemberRow = typeof sealMembers.$inferInsert;
export type RevealRow = typeof reveals.$inferSelect;
export type NewRevealRow = typeof reveals.$inferInsert;
export type VerdictRow = typeof verdicts.$inferSelect;
export type NewVerdictRow = typeof verdicts.$inferInsert;
export type VerdictEntryRow = typeof verdictEntriesTable.$inferSelect;
export type NewVerdictEntryRow = typeof verdictEntriesTable.$inferInsert;
export type AttestationRow = typeof attestations.$inferSelect;
export type NewAttestationRow = typeof attestations.$inferInsert;
export type DeclineRow = typeof declines.$inferSelect;
export type NewDeclineRow = typeof declines.$inferInsert;
export type NodeRow = typeof nodes.$inferSelect;
export type NewNodeRow = typeof nodes.$inferInsert;
export type ReputationRow = typeof reputation.$inferSelect;
export type NewReputationRow = typeof reputation.$inferInsert;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type NewApiKeyRow = typeof apiKeys.$inferInsert;
export type UsageRow = typeof usage.$inferSelect;
export type NewUsageRow = typeof usage.$inferInsert;
export type IdempotencyRow = typeof idempotency.$inferSelect;
export type NewIdempotencyRow = typeof idempotency.$inferInsert;
export type ChainRequestRow = typeof chainRequests.$inferSelect;
export type NewChainRequestRow = typeof chainRequests.$inferInsert;
export type ChainRequestCountRow = typeof chainRequestCounts.$inferSelect;
export type ChainCursorRow = typeof chainCursors.$inferSelect;
export type NewChainCursorRow = typeof chainCursors.$inferInsert;

/** Every table, keyed for `drizzle(client, { schema: historySchema })`. */
export const historySchema = {
  requests,
  requestModels,
  requestCommitters,
  requestCounts,
  commits,
  seals,
  sealMembers,
  reveals,
  verdicts,
  verdictEntries: verdictEntriesTable,
  attestations,
  declines,
  nodes,
  reputation,
  unheardNodes,
  apiKeys,
  usage,
  idempotency,
  requestIntake,
  coordinatorLeases,
  databaseIdentity,
  healthProbes,
  chainRequests,
  chainRequestCounts,
  chainCursors,
} as const;
