CREATE TABLE `coordinator_leases` (
	`coordinator` text PRIMARY KEY NOT NULL,
	`renewed_at` integer NOT NULL,
	CONSTRAINT "coordinator_leases_coordinator_ck" CHECK(length("coordinator") = 64 and "coordinator" not glob '*[^0-9a-f]*')
);
