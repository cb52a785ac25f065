-- Pull-through distributions: a base path under which any upstream
-- repository of a pull-through remote (remote package; id only, its table
-- may not exist where this package alone is migrated) is served, cached in
-- a repository, remote and distribution made for it on its first pull.
-- tag_ttl is in seconds; max_size, when set, bounds the stored bytes of
-- what its repositories hold.
CREATE TABLE pull_through_distributions (
  id VARCHAR(36) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  base_path VARCHAR(255) NOT NULL UNIQUE,
  remote_id VARCHAR(36) NOT NULL,
  tag_ttl INTEGER NOT NULL DEFAULT 300,
  max_size BIGINT,
  created_at TIMESTAMP NOT NULL
);
CREATE INDEX pull_through_distributions_remote ON pull_through_distributions (remote_id);
-- A distribution a pull-through distribution made names it, and the
-- remote its repository's content is fetched through.
ALTER TABLE distributions ADD COLUMN pull_through_id VARCHAR(36) REFERENCES pull_through_distributions(id);
ALTER TABLE distributions ADD COLUMN remote_id VARCHAR(36);
CREATE INDEX distributions_pull_through ON distributions (pull_through_id) WHERE pull_through_id IS NOT NULL;
