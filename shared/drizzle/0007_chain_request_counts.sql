CREATE TABLE `chain_request_counts` (
	`status` text PRIMARY KEY NOT NULL,
	`n` integer DEFAULT 0 NOT NULL,
	CONSTRAINT "chain_request_counts_status_ck" CHECK("status" in ('pending', 'fulfilled', 'refunded', 'reorged'))
);
--> statement-breakpoint
-- Written by hand below (drizzle-kit generates no triggers): chain_request_counts is kept by the
-- database, in the transaction of every write to chain_requests, whoever writes.
INSERT INTO `chain_request_counts` (`status`, `n`) SELECT `status`, count(*) FROM `chain_requests` GROUP BY `status`;
--> statement-breakpoint
CREATE TRIGGER `chain_requests_count_insert` AFTER INSERT ON `chain_requests` BEGIN
  INSERT INTO `chain_request_counts` (`status`, `n`) VALUES (new.`status`, 1)
    ON CONFLICT (`status`) DO UPDATE SET `n` = `n` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `chain_requests_count_status` AFTER UPDATE OF `status` ON `chain_requests` WHEN old.`status` IS NOT new.`status` BEGIN
  UPDATE `chain_request_counts` SET `n` = `n` - 1 WHERE `status` = old.`status`;
  INSERT INTO `chain_request_counts` (`status`, `n`) VALUES (new.`status`, 1)
    ON CONFLICT (`status`) DO UPDATE SET `n` = `n` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `chain_requests_count_delete` AFTER DELETE ON `chain_requests` BEGIN
  UPDATE `chain_request_counts` SET `n` = `n` - 1 WHERE `status` = old.`status`;
END;
