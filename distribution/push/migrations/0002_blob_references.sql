-- Staged blobs keep their bytes: orphan cleanup (repository's SweepBlobs)
-- reads this view, defined empty by the repository package's migration
-- 0008, and deletes no blob a push has staged.
DROP VIEW IF EXISTS blob_references;
CREATE VIEW blob_references AS
  SELECT digest FROM pending_blobs;
