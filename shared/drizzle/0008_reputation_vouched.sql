ALTER TABLE `reputation` ADD `vouched` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `reputation_vouched_idx` ON `reputation` (`vouched`);