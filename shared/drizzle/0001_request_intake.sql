CREATE TABLE `request_intake` (
	`seq` integer PRIMARY KEY NOT NULL,
	`id_prefix` integer NOT NULL,
	`request_id` text NOT NULL,
	`coordinator` text NOT NULL,
	`caller_id` text NOT NULL,
	`body` text NOT NULL,
	`created_at` integer NOT NULL,
	`deadline` integer NOT NULL,
	CONSTRAINT "request_intake_request_id_ck" CHECK(length("request_id") = 64 and "request_id" not glob '*[^0-9a-f]*')
);
--> statement-breakpoint
CREATE INDEX `request_intake_prefix_idx` ON `request_intake` (`id_prefix`);--> statement-breakpoint
CREATE INDEX `request_intake_coordinator_idx` ON `request_intake` (`coordinator`,`seq`);--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_idempotency` (
	`key_id` text NOT NULL,
	`idempotency_key` text NOT NULL,
	`request_id` text NOT NULL,
	`body_digest` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`key_id`, `idempotency_key`),
	CONSTRAINT "idempotency_key_ck" CHECK(length("idempotency_key") between 1 and 255),
	CONSTRAINT "idempotency_body_digest_ck" CHECK(length("body_digest") = 64 and "body_digest" not glob '*[^0-9a-f]*')
);
--> statement-breakpoint
INSERT INTO `__new_idempotency`("key_id", "idempotency_key", "request_id", "body_digest", "created_at") SELECT "key_id", "idempotency_key", "request_id", "body_digest", "created_at" FROM `idempotency`;--> statement-breakpoint
DROP TABLE `idempotency`;--> statement-breakpoint
ALTER TABLE `__new_idempotency` RENAME TO `idempotency`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `idempotency_request_idx` ON `idempotency` (`request_id`);--> statement-breakpoint
CREATE INDEX `idempotency_created_idx` ON `idempotency` (`created_at`);