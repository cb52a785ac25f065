-- Distributions hold what they serve: the repository package's
-- DeleteVersion and DeleteRepository read this view (defined empty by its
-- migration 0004), so that no Store built on this database deletes a
-- version or repository a distribution serves. A distribution with
-- repository_id follows the latest version (version_id NULL); one with
-- repository_version_id pins that version.
DROP VIEW IF EXISTS repository_holders;
CREATE VIEW repository_holders AS
  SELECT CAST('distribution' AS VARCHAR(32)) AS kind, d.name, d.repository_id,
    CAST(NULL AS VARCHAR(36)) AS version_id
  FROM distributions AS d
  WHERE d.repository_id IS NOT NULL
  UNION ALL
  SELECT CAST('distribution' AS VARCHAR(32)) AS kind, d.name, v.repository_id, v.id AS version_id
  FROM distributions AS d
  JOIN repository_versions AS v ON v.id = d.repository_version_id;
