DROP INDEX `request_intake_prefix_idx`;--> statement-breakpoint
CREATE INDEX `request_intake_lookup_idx` ON `request_intake` (("seq" >> 10),`id_prefix`);