CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`label` text NOT NULL,
	`quota_per_day` integer NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	CONSTRAINT "api_keys_hash_ck" CHECK(length("hash") = 64 and "hash" not glob '*[^0-9a-f]*'),
	CONSTRAINT "api_keys_quota_ck" CHECK("quota_per_day" >= 0)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_hash_unique` ON `api_keys` (`hash`);--> statement-breakpoint
CREATE TABLE `attestations` (
	`packet_id` text PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`node_id` text NOT NULL,
	`verdict_digest` text NOT NULL,
	`transcript_root` text NOT NULL,
	`created_at` integer NOT NULL,
	`raw` text NOT NULL,
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `attestations_node_created_idx` ON `attestations` (`node_id`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `attestations_request_node_uq` ON `attestations` (`request_id`,`node_id`);--> statement-breakpoint
CREATE TABLE `chain_requests` (
	`chain_id` integer NOT NULL,
	`contract` text NOT NULL,
	`request_no` text NOT NULL,
	`request_id` text NOT NULL,
	`tx_hash` text NOT NULL,
	`log_index` integer NOT NULL,
	`block_number` integer NOT NULL,
	`block_hash` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`fulfilled_tx` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`chain_id`, `contract`, `request_no`),
	CONSTRAINT "chain_requests_status_ck" CHECK("status" in ('pending', 'fulfilled', 'refunded', 'reorged')),
	CONSTRAINT "chain_requests_settled_ck" CHECK("status" not in ('fulfilled', 'refunded') or "fulfilled_tx" is not null),
	CONSTRAINT "chain_requests_request_no_ck" CHECK(length("request_no") between 1 and 78 and "request_no" not glob '*[^0-9]*'),
	CONSTRAINT "chain_requests_request_id_ck" CHECK("request_id" = cast("chain_id" as text) || ':' || "contract" || ':' || "request_no")
);
--> statement-breakpoint
CREATE UNIQUE INDEX `chain_requests_request_id_unique` ON `chain_requests` (`request_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `chain_requests_event_uq` ON `chain_requests` (`chain_id`,`tx_hash`,`log_index`);--> statement-breakpoint
CREATE INDEX `chain_requests_status_block_idx` ON `chain_requests` (`status`,`block_number`);--> statement-breakpoint
CREATE TABLE `commits` (
	`packet_id` text PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`node_id` text NOT NULL,
	`commitment` text NOT NULL,
	`created_at` integer NOT NULL,
	`raw` text NOT NULL,
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `commits_member_ref_uq` ON `commits` (`packet_id`,`request_id`,`node_id`,`commitment`);--> statement-breakpoint
CREATE INDEX `commits_node_created_idx` ON `commits` (`node_id`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `commits_request_node_commitment_uq` ON `commits` (`request_id`,`node_id`,`commitment`);--> statement-breakpoint
CREATE TABLE `idempotency` (
	`key_id` text NOT NULL,
	`idempotency_key` text NOT NULL,
	`request_id` text NOT NULL,
	`body_digest` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`key_id`, `idempotency_key`),
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "idempotency_key_ck" CHECK(length("idempotency_key") between 1 and 255),
	CONSTRAINT "idempotency_body_digest_ck" CHECK(length("body_digest") = 64 and "body_digest" not glob '*[^0-9a-f]*')
);
--> statement-breakpoint
CREATE INDEX `idempotency_request_idx` ON `idempotency` (`request_id`);--> statement-breakpoint
CREATE INDEX `idempotency_created_idx` ON `idempotency` (`created_at`);--> statement-breakpoint
CREATE TABLE `nodes` (
	`node_id` text PRIMARY KEY NOT NULL,
	`role` text NOT NULL,
	`software` text NOT NULL,
	`last_heartbeat` text NOT NULL,
	`last_heartbeat_id` text NOT NULL,
	`models` text NOT NULL,
	`embedders` text NOT NULL,
	`tokens_per_second` real NOT NULL,
	`embeddings_per_second` real NOT NULL,
	`first_seen` integer NOT NULL,
	`last_seen` integer NOT NULL,
	CONSTRAINT "nodes_role_ck" CHECK("role" in ('node', 'relay', 'follower', 'verifier')),
	CONSTRAINT "nodes_seen_ck" CHECK("first_seen" <= "last_seen"),
	CONSTRAINT "nodes_rates_ck" CHECK("tokens_per_second" >= 0 and "embeddings_per_second" >= 0)
);
--> statement-breakpoint
CREATE INDEX `nodes_last_seen_idx` ON `nodes` (`last_seen`);--> statement-breakpoint
CREATE INDEX `nodes_role_last_seen_idx` ON `nodes` (`role`,`last_seen`);--> statement-breakpoint
CREATE TABLE `reputation` (
	`node_id` text PRIMARY KEY NOT NULL,
	`agreements` integer DEFAULT 0 NOT NULL,
	`disagreements` integer DEFAULT 0 NOT NULL,
	`withheld` integer DEFAULT 0 NOT NULL,
	`invalid` integer DEFAULT 0 NOT NULL,
	`commits` integer DEFAULT 0 NOT NULL,
	`latency_samples` integer DEFAULT 0 NOT NULL,
	`mean_latency_ms` real,
	`score` real DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL,
	CONSTRAINT "reputation_counts_ck" CHECK("agreements" >= 0 and "disagreements" >= 0 and "withheld" >= 0 and "invalid" >= 0 and "commits" >= 0 and "latency_samples" >= 0),
	CONSTRAINT "reputation_score_ck" CHECK("score" >= 0 and "score" <= 1),
	CONSTRAINT "reputation_latency_ck" CHECK(("latency_samples" = 0 and "mean_latency_ms" is null) or ("latency_samples" > 0 and "mean_latency_ms" >= 0))
);
--> statement-breakpoint
CREATE INDEX `reputation_score_idx` ON `reputation` (`score`);--> statement-breakpoint
CREATE TABLE `request_models` (
	`request_id` text NOT NULL,
	`model_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`request_id`, `model_id`),
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `request_models_model_created_idx` ON `request_models` (`model_id`,`created_at`,`request_id`);--> statement-breakpoint
CREATE TABLE `requests` (
	`request_id` text PRIMARY KEY NOT NULL,
	`packet_id` text NOT NULL,
	`coordinator` text NOT NULL,
	`prompt` text,
	`messages` text,
	`accepted_models` text NOT NULL,
	`params` text NOT NULL,
	`frame` text NOT NULL,
	`origin_kind` text NOT NULL,
	`chain_id` integer,
	`contract` text,
	`request_no` text,
	`tx_hash` text,
	`block_number` integer,
	`status` text DEFAULT 'pending' NOT NULL,
	`error` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`raw` text NOT NULL,
	CONSTRAINT "requests_status_ck" CHECK("status" in ('pending', 'sealed', 'verdict', 'no-consensus', 'expired', 'failed')),
	CONSTRAINT "requests_origin_kind_ck" CHECK("origin_kind" in ('http', 'peer', 'chain')),
	CONSTRAINT "requests_prompt_xor_messages_ck" CHECK(("prompt" is null) <> ("messages" is null)),
	CONSTRAINT "requests_chain_origin_ck" CHECK(("origin_kind" = 'chain' and "chain_id" is not null and "contract" is not null and "request_no" is not null and "tx_hash" is not null and "block_number" is not null)
        or ("origin_kind" <> 'chain' and "chain_id" is null and "contract" is null and "request_no" is null and "tx_hash" is null and "block_number" is null))
);
--> statement-breakpoint
CREATE UNIQUE INDEX `requests_packet_id_unique` ON `requests` (`packet_id`);--> statement-breakpoint
CREATE INDEX `requests_created_idx` ON `requests` (`created_at`,`request_id`);--> statement-breakpoint
CREATE INDEX `requests_status_created_idx` ON `requests` (`status`,`created_at`,`request_id`);--> statement-breakpoint
CREATE INDEX `requests_coordinator_created_idx` ON `requests` (`coordinator`,`created_at`,`request_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `requests_id_packet_uq` ON `requests` (`request_id`,`packet_id`);--> statement-breakpoint
CREATE TABLE `reveals` (
	`packet_id` text PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`node_id` text NOT NULL,
	`model_id` text NOT NULL,
	`model_file_hash` text NOT NULL,
	`output_digest` text NOT NULL,
	`output` text NOT NULL,
	`b_embedding` text NOT NULL,
	`created_at` integer NOT NULL,
	`raw` text NOT NULL,
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `reveals_request_node_idx` ON `reveals` (`request_id`,`node_id`);--> statement-breakpoint
CREATE INDEX `reveals_node_created_idx` ON `reveals` (`node_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `reveals_model_created_idx` ON `reveals` (`model_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `seal_members` (
	`request_id` text NOT NULL,
	`node_id` text NOT NULL,
	`commitment` text NOT NULL,
	`commit_id` text NOT NULL,
	PRIMARY KEY(`request_id`, `node_id`),
	FOREIGN KEY (`request_id`) REFERENCES `seals`(`request_id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`commit_id`,`request_id`,`node_id`,`commitment`) REFERENCES `commits`(`packet_id`,`request_id`,`node_id`,`commitment`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `seal_members_commit_id_unique` ON `seal_members` (`commit_id`);--> statement-breakpoint
CREATE INDEX `seal_members_node_idx` ON `seal_members` (`node_id`,`request_id`);--> statement-breakpoint
CREATE TABLE `seals` (
	`packet_id` text PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`request_packet_id` text NOT NULL,
	`coordinator` text NOT NULL,
	`member_count` integer NOT NULL,
	`created_at` integer NOT NULL,
	`raw` text NOT NULL,
	FOREIGN KEY (`request_id`,`request_packet_id`) REFERENCES `requests`(`request_id`,`packet_id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "seals_member_count_ck" CHECK("member_count" >= 1)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `seals_request_id_unique` ON `seals` (`request_id`);--> statement-breakpoint
CREATE TABLE `usage` (
	`key_id` text NOT NULL,
	`day` text NOT NULL,
	`count` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`key_id`, `day`),
	CONSTRAINT "usage_day_ck" CHECK("day" glob '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'),
	CONSTRAINT "usage_count_ck" CHECK("count" >= 0)
);
--> statement-breakpoint
CREATE TABLE `verdict_entries` (
	`request_id` text NOT NULL,
	`ordinal` integer NOT NULL,
	`node_id` text NOT NULL,
	`commitment` text,
	`reveal_id` text,
	`outcome` text NOT NULL,
	`reason` text,
	`winner` integer DEFAULT false NOT NULL,
	PRIMARY KEY(`request_id`, `ordinal`),
	FOREIGN KEY (`request_id`) REFERENCES `verdicts`(`request_id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "verdict_entries_ordinal_ck" CHECK("ordinal" >= 0),
	CONSTRAINT "verdict_entries_outcome_ck" CHECK("outcome" in ('accepted', 'rejected')),
	CONSTRAINT "verdict_entries_reason_ck" CHECK(("outcome" = 'accepted' and "reason" is null and "commitment" is not null)
        or ("outcome" = 'rejected' and "reason" is not null and "reason" in ('NOT_SEALED', 'NOT_REVEALED', 'COMMITMENT_MISMATCH', 'MODEL_NOT_ACCEPTED', 'EMBEDDING_LENGTH', 'EMBEDDING_DISAGREES', 'REVEAL_LATE', 'DUPLICATE_REVEAL', 'OUTSIDE_CLUSTER') and "winner" = 0))
);
--> statement-breakpoint
CREATE INDEX `verdict_entries_node_outcome_idx` ON `verdict_entries` (`node_id`,`outcome`,`reason`);--> statement-breakpoint
CREATE INDEX `verdict_entries_node_request_idx` ON `verdict_entries` (`node_id`,`request_id`);--> statement-breakpoint
CREATE TABLE `verdicts` (
	`request_id` text PRIMARY KEY NOT NULL,
	`packet_id` text NOT NULL,
	`seal_id` text NOT NULL,
	`coordinator` text NOT NULL,
	`status` text NOT NULL,
	`verdict_digest` text NOT NULL,
	`transcript_root` text NOT NULL,
	`winner_node_id` text,
	`winner_commitment` text,
	`winner_output_digest` text,
	`winner_model_id` text,
	`winner_model_file_hash` text,
	`seal_size` integer NOT NULL,
	`required` integer NOT NULL,
	`created_at` integer NOT NULL,
	`verdict` text NOT NULL,
	`raw` text NOT NULL,
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`seal_id`) REFERENCES `seals`(`packet_id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "verdicts_status_ck" CHECK("status" in ('accepted', 'no-consensus')),
	CONSTRAINT "verdicts_winner_ck" CHECK(("status" = 'accepted' and "winner_node_id" is not null and "winner_commitment" is not null and "winner_output_digest" is not null and "winner_model_id" is not null and "winner_model_file_hash" is not null)
        or ("status" = 'no-consensus' and "winner_node_id" is null and "winner_commitment" is null and "winner_output_digest" is null and "winner_model_id" is null and "winner_model_file_hash" is null)),
	CONSTRAINT "verdicts_required_ck" CHECK("seal_size" >= 1 and "required" >= 1 and "required" <= "seal_size")
);
--> statement-breakpoint
CREATE UNIQUE INDEX `verdicts_packet_id_unique` ON `verdicts` (`packet_id`);--> statement-breakpoint
CREATE INDEX `verdicts_status_created_idx` ON `verdicts` (`status`,`created_at`,`request_id`);--> statement-breakpoint
CREATE INDEX `verdicts_winner_node_created_idx` ON `verdicts` (`winner_node_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `verdicts_winner_model_created_idx` ON `verdicts` (`winner_model_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `verdicts_digest_idx` ON `verdicts` (`verdict_digest`);