CREATE TABLE `database_identity` (
	`singleton` integer PRIMARY KEY NOT NULL,
	`id` text NOT NULL,
	CONSTRAINT "database_identity_singleton_ck" CHECK("singleton" = 1),
	CONSTRAINT "database_identity_id_ck" CHECK(length("id") = 32 and "id" not glob '*[^0-9a-f]*')
);
--> statement-breakpoint
INSERT INTO `database_identity` (`singleton`, `id`) VALUES (1, lower(hex(randomblob(16))));
