-- A unit's natural key: (type, digest) for blobs and manifests; tags add the name.
CREATE UNIQUE INDEX contents_natural ON contents (type, digest, name);
CREATE INDEX contents_type_id ON contents (type, id);
CREATE INDEX contents_name ON contents (name) WHERE name <> '';
CREATE INDEX contents_subject ON contents (subject) WHERE subject <> '';
CREATE INDEX contents_tagged ON contents (tagged_id) WHERE tagged_id IS NOT NULL;
-- What a manifest or list points to, by digest, so a list may name children not yet stored.
CREATE TABLE content_refs (
  parent_id BIGINT NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  role VARCHAR(16) NOT NULL,
  child_digest VARCHAR(160) NOT NULL,
  media_type VARCHAR(255) NOT NULL DEFAULT '',
  size BIGINT NOT NULL DEFAULT 0,
  platform TEXT,
  PRIMARY KEY (parent_id, position)
);
CREATE INDEX content_refs_child ON content_refs (child_digest);
-- Membership: a unit is in version N of a repository when
-- version_added <= N and (version_removed IS NULL or version_removed > N).
-- Each index serves one query shape and covers it, so that listing and
-- counting a version never touch the table rows.
CREATE INDEX rc_by_type ON repository_contents (repository_id, content_type, content_id, version_added, version_removed);
CREATE INDEX rc_by_content ON repository_contents (repository_id, content_id, version_added, version_removed);
CREATE INDEX rc_added ON repository_contents (repository_id, version_added, content_type);
CREATE INDEX rc_removed ON repository_contents (repository_id, version_removed, content_type);
CREATE UNIQUE INDEX rc_live ON repository_contents (repository_id, content_id) WHERE version_removed IS NULL;
CREATE INDEX rc_content ON repository_contents (content_id);
