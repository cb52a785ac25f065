-- Repositories, their versions, the global content units and membership.
CREATE TABLE repositories (
  id VARCHAR(36) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  latest_version INTEGER NOT NULL DEFAULT 0,
  next_version INTEGER NOT NULL DEFAULT 1,
  created_at TIMESTAMP NOT NULL
);
CREATE TABLE repository_versions (
  id VARCHAR(36) PRIMARY KEY,
  repository_id VARCHAR(36) NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  number INTEGER NOT NULL,
  base_version INTEGER,
  created_at TIMESTAMP NOT NULL,
  UNIQUE (repository_id, number)
);
CREATE TABLE contents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid VARCHAR(36) NOT NULL UNIQUE,
  type VARCHAR(32) NOT NULL,
  digest VARCHAR(160) NOT NULL DEFAULT '',
  media_type VARCHAR(255) NOT NULL DEFAULT '',
  size BIGINT NOT NULL DEFAULT 0,
  raw BLOB,
  schema_version INTEGER NOT NULL DEFAULT 0,
  foreign_layer BOOLEAN NOT NULL DEFAULT FALSE,
  urls TEXT,
  artifact_type VARCHAR(255) NOT NULL DEFAULT '',
  subject VARCHAR(160) NOT NULL DEFAULT '',
  name VARCHAR(128) NOT NULL DEFAULT '',
  tagged_id BIGINT REFERENCES contents(id),
  created_at TIMESTAMP NOT NULL
);
CREATE TABLE repository_contents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  repository_id VARCHAR(36) NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  content_id BIGINT NOT NULL REFERENCES contents(id),
  content_type VARCHAR(32) NOT NULL,
  version_added INTEGER NOT NULL,
  version_removed INTEGER
);
