-- Repositories created by a registry push; only these take pushes.
CREATE TABLE IF NOT EXISTS push_repositories (
  repository_id VARCHAR(36) PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
  created_at TIMESTAMP NOT NULL
);
-- Blob uploads in progress; their bytes are in the blob store's uploads area.
CREATE TABLE IF NOT EXISTS registry_uploads (
  id VARCHAR(64) PRIMARY KEY,
  repository_id VARCHAR(36) NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_uploads_updated ON registry_uploads (updated_at);
-- Blobs pushed to a repository that no version holds yet (Pulp's pending
-- blobs): pullable from the repository, added to a version by the manifest
-- that refers to them.
CREATE TABLE IF NOT EXISTS pending_blobs (
  repository_id VARCHAR(36) NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest VARCHAR(160) NOT NULL,
  size BIGINT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX IF NOT EXISTS pending_blobs_created ON pending_blobs (created_at);
