-- How fast a remote may download (bytes per second) and how often it may
-- ask (requests per second); 0 is no limit.
ALTER TABLE remotes ADD COLUMN max_bandwidth BIGINT NOT NULL DEFAULT 0;
ALTER TABLE remotes ADD COLUMN rate_limit INTEGER NOT NULL DEFAULT 0;
