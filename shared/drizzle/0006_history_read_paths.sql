CREATE TABLE `request_committers` (
	`request_id` text NOT NULL,
	`node_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`request_id`, `node_id`),
	FOREIGN KEY (`request_id`) REFERENCES `requests`(`request_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `request_committers_node_created_idx` ON `request_committers` (`node_id`,`created_at`,`request_id`);--> statement-breakpoint
CREATE TABLE `request_counts` (
	`status` text PRIMARY KEY NOT NULL,
	`n` integer DEFAULT 0 NOT NULL,
	CONSTRAINT "request_counts_status_ck" CHECK("status" in ('pending', 'sealed', 'verdict', 'no-consensus', 'expired', 'failed'))
);
--> statement-breakpoint
CREATE INDEX `requests_origin_created_idx` ON `requests` (`origin_kind`,`created_at`,`request_id`);--> statement-breakpoint
-- Written by hand below (drizzle-kit generates no triggers): request_counts and request_committers
-- are kept by the database, in the transaction of every write to requests and commits, whoever writes.
INSERT INTO `request_counts` (`status`, `n`) SELECT `status`, count(*) FROM `requests` GROUP BY `status`;
--> statement-breakpoint
INSERT OR IGNORE INTO `request_committers` (`request_id`, `node_id`, `created_at`)
  SELECT c.`request_id`, c.`node_id`, r.`created_at` FROM `commits` c JOIN `requests` r ON r.`request_id` = c.`request_id`;
--> statement-breakpoint
CREATE TRIGGER `requests_count_insert` AFTER INSERT ON `requests` BEGIN
  INSERT INTO `request_counts` (`status`, `n`) VALUES (new.`status`, 1)
    ON CONFLICT (`status`) DO UPDATE SET `n` = `n` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `requests_count_status` AFTER UPDATE OF `status` ON `requests` WHEN old.`status` IS NOT new.`status` BEGIN
  UPDATE `request_counts` SET `n` = `n` - 1 WHERE `status` = old.`status`;
  INSERT INTO `request_counts` (`status`, `n`) VALUES (new.`status`, 1)
    ON CONFLICT (`status`) DO UPDATE SET `n` = `n` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `requests_count_delete` AFTER DELETE ON `requests` BEGIN
  UPDATE `request_counts` SET `n` = `n` - 1 WHERE `status` = old.`status`;
END;
--> statement-breakpoint
CREATE TRIGGER `commits_committer_insert` AFTER INSERT ON `commits` BEGIN
  INSERT OR IGNORE INTO `request_committers` (`request_id`, `node_id`, `created_at`)
    SELECT `request_id`, new.`node_id`, `created_at` FROM `requests` WHERE `request_id` = new.`request_id`;
END;
