CREATE TABLE `declines` (
	`packet_id` text PRIMARY KEY NOT NULL,
	`request_id` text NOT NULL,
	`node_id` text NOT NULL,
	`model_id` text NOT NULL,
	`model_file_hash` text NOT NULL,
	`reason` text NOT NULL,
	`prompt_tokens` integer NOT NULL,
	`context_tokens` integer NOT NULL,
	`created_at` integer NOT NULL,
	`raw` text NOT NULL,
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "declines_reason_ck" CHECK("reason" in ('context-exceeded'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX `declines_request_node_uq` ON `declines` (`request_id`,`node_id`);