CREATE TABLE `unheard_nodes` (
	`node_id` text PRIMARY KEY NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `unheard_nodes_updated_idx` ON `unheard_nodes` (`updated_at`,`node_id`);--> statement-breakpoint
DROP INDEX `reputation_updated_idx`;--> statement-breakpoint
-- Written by hand below (drizzle-kit generates no triggers): unheard_nodes is kept by the database, in
-- the transaction of every write to reputation and nodes, whoever writes.
INSERT INTO `unheard_nodes` (`node_id`, `updated_at`)
  SELECT r.`node_id`, r.`updated_at` FROM `reputation` r
  WHERE NOT EXISTS (SELECT 1 FROM `nodes` n WHERE n.`node_id` = r.`node_id`);
--> statement-breakpoint
CREATE TRIGGER `reputation_unheard_insert` AFTER INSERT ON `reputation`
WHEN NOT EXISTS (SELECT 1 FROM `nodes` WHERE `node_id` = new.`node_id`) BEGIN
  INSERT INTO `unheard_nodes` (`node_id`, `updated_at`) VALUES (new.`node_id`, new.`updated_at`)
    ON CONFLICT (`node_id`) DO UPDATE SET `updated_at` = excluded.`updated_at`;
END;
--> statement-breakpoint
CREATE TRIGGER `reputation_unheard_update` AFTER UPDATE OF `updated_at` ON `reputation` BEGIN
  UPDATE `unheard_nodes` SET `updated_at` = new.`updated_at` WHERE `node_id` = new.`node_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_heard` AFTER INSERT ON `nodes` BEGIN
  DELETE FROM `unheard_nodes` WHERE `node_id` = new.`node_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `nodes_unheard_delete` AFTER DELETE ON `nodes`
WHEN EXISTS (SELECT 1 FROM `reputation` WHERE `node_id` = old.`node_id`) BEGIN
  INSERT INTO `unheard_nodes` (`node_id`, `updated_at`)
    SELECT `node_id`, `updated_at` FROM `reputation` WHERE `node_id` = old.`node_id`
    ON CONFLICT (`node_id`) DO UPDATE SET `updated_at` = excluded.`updated_at`;
END;
