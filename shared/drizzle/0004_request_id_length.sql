PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_request_intake` (
	`seq` integer PRIMARY KEY NOT NULL,
	`id_prefix` integer NOT NULL,
	`request_id` text NOT NULL,
	`coordinator` text NOT NULL,
	`caller_id` text NOT NULL,
	`body` text NOT NULL,
	`created_at` integer NOT NULL,
	`deadline` integer NOT NULL,
	CONSTRAINT "request_intake_request_id_ck" CHECK((length("request_id") = 64 and "request_id" not glob '*[^0-9a-f]*') or (length("request_id") <= 142 and "request_id" glob '[0-9]*:0x*:[0-9]*'))
);
--> statement-breakpoint
INSERT INTO `__new_request_intake`("seq", "id_prefix", "request_id", "coordinator", "caller_id", "body", "created_at", "deadline") SELECT "seq", "id_prefix", "request_id", "coordinator", "caller_id", "body", "created_at", "deadline" FROM `request_intake`;--> statement-breakpoint
DROP TABLE `request_intake`;--> statement-breakpoint
ALTER TABLE `__new_request_intake` RENAME TO `request_intake`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `request_intake_lookup_idx` ON `request_intake` (("seq" >> 10),`id_prefix`);--> statement-breakpoint
CREATE INDEX `request_intake_coordinator_idx` ON `request_intake` (`coordinator`,`seq`);