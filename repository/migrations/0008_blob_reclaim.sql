-- Orphan cleanup deletes a blob's bytes from storage in steps: it records
-- the digest here (a deletion in flight), checks that nothing references
-- the digest, deletes the bytes, and drops the row. A writer about to rely
-- on a blob's bytes leases the digest first (blob_leases) and waits until
-- no deletion of it is in flight: whichever of the two committed first,
-- the other sees it, so bytes a writer relies on are never deleted and a
-- writer never relies on bytes being deleted.
CREATE TABLE blob_deletions (
  digest VARCHAR(160) PRIMARY KEY,
  sweep_id VARCHAR(36) NOT NULL,
  started_at TIMESTAMP NOT NULL
);
CREATE TABLE blob_leases (
  lease_id VARCHAR(36) NOT NULL,
  digest VARCHAR(160) NOT NULL,
  expires_at TIMESTAMP NOT NULL,
  PRIMARY KEY (lease_id, digest)
);
CREATE INDEX blob_leases_digest ON blob_leases (digest, expires_at);
CREATE INDEX blob_leases_expires ON blob_leases (expires_at);
-- Orphan cleanup looks for units no version holds, created before a cutoff.
CREATE INDEX contents_created ON contents (created_at);
-- What else keeps a blob's bytes (a blob pushed and not yet in a version,
-- say): one row per digest. Empty here: a package that keeps such
-- references redefines the view over its own tables in a migration of its
-- own, keeping the column (distribution/push does).
CREATE VIEW blob_references AS
  SELECT CAST(NULL AS VARCHAR(160)) AS digest
  WHERE 1 = 0;
