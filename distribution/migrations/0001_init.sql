-- Distributions: a base path served from a repository's latest version or
-- from one pinned version. Exactly one of the two is set.
CREATE TABLE distributions (
  id VARCHAR(36) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  base_path VARCHAR(255) NOT NULL UNIQUE,
  repository_id VARCHAR(36) REFERENCES repositories(id),
  repository_version_id VARCHAR(36) REFERENCES repository_versions(id),
  created_at TIMESTAMP NOT NULL,
  CHECK ((repository_id IS NULL AND repository_version_id IS NOT NULL) OR (repository_id IS NOT NULL AND repository_version_id IS NULL))
);
CREATE INDEX distributions_repository ON distributions (repository_id);
CREATE INDEX distributions_version ON distributions (repository_version_id);
