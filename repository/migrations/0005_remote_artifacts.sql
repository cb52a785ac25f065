-- On-demand content (Pulp's on_demand and streamed policies). A blob unit
-- with on_demand set is recorded without its bytes: blob storage does not
-- hold them, and they are fetched from an upstream when a client pulls the
-- blob. remote_artifacts (Pulp's RemoteArtifact) says where from: the
-- remote (remote package, id only: this package's migrations run before
-- that table exists) that can fetch the unit for a repository, recorded by
-- a sync of that remote into the repository or by a pull-through cache.
-- Rows outlive the bytes being stored, so that stored bytes can be
-- reclaimed and fetched again. See repository/lazy.go.
ALTER TABLE contents ADD COLUMN on_demand BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX contents_on_demand ON contents (id) WHERE on_demand;
CREATE TABLE remote_artifacts (
  content_id BIGINT NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
  repository_id VARCHAR(36) NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  remote_id VARCHAR(36) NOT NULL,
  created_at TIMESTAMP NOT NULL,
  PRIMARY KEY (content_id, repository_id, remote_id)
);
CREATE INDEX remote_artifacts_remote ON remote_artifacts (remote_id);
CREATE INDEX remote_artifacts_repository ON remote_artifacts (repository_id, content_id);
