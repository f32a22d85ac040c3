CREATE TABLE `health_probes` (
	`relay` text PRIMARY KEY NOT NULL,
	`probed_at` integer NOT NULL,
	CONSTRAINT "health_probes_relay_ck" CHECK(length("relay") = 64 and "relay" not glob '*[^0-9a-f]*')
);
