-- Pull-through remotes: an upstream registry (not one repository of it)
-- that pull-through distributions cache. The remote a pull-through cache
-- creates for each upstream repository it serves is an ordinary remote
-- whose pull_through_id names its pull-through remote.
CREATE TABLE pull_through_remotes (
  id VARCHAR(36) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  url TEXT NOT NULL,
  policy VARCHAR(16) NOT NULL DEFAULT 'on_demand',
  includes TEXT NOT NULL DEFAULT '[]',
  excludes TEXT NOT NULL DEFAULT '[]',
  download_concurrency INTEGER NOT NULL,
  username TEXT NOT NULL DEFAULT '',
  password TEXT NOT NULL DEFAULT '',
  ssl_ca_certificate TEXT NOT NULL DEFAULT '',
  ssl_client_certificate TEXT NOT NULL DEFAULT '',
  ssl_client_key TEXT NOT NULL DEFAULT '',
  insecure_skip_verify BOOLEAN NOT NULL DEFAULT FALSE,
  proxy_url TEXT NOT NULL DEFAULT '',
  created_at TIMESTAMP NOT NULL
);
ALTER TABLE remotes ADD COLUMN pull_through_id VARCHAR(36);
CREATE INDEX remotes_pull_through ON remotes (pull_through_id) WHERE pull_through_id IS NOT NULL;
-- What uses a pull-through remote (a pull-through distribution): one row
-- per user, by kind and name. DeletePullThrough refuses while a row names
-- the remote. Empty here: the distribution package redefines it over its
-- own table in a migration of its own, keeping these columns.
CREATE VIEW pull_through_remote_users AS
  SELECT CAST(NULL AS VARCHAR(32)) AS kind, CAST(NULL AS VARCHAR(255)) AS name,
    CAST(NULL AS VARCHAR(36)) AS remote_id
  WHERE 1 = 0;
