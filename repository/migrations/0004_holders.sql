-- What serves a repository or one of its versions (a distribution, say):
-- one row per holder, named by kind and name, with the repository it
-- serves and, when it pins one version, that version's id; a NULL
-- version_id follows the repository's latest version. DeleteVersion
-- refuses while a row pins the version, DeleteRepository while any row
-- names the repository.
-- Empty here: a package that serves repositories redefines the view over
-- its own tables in a migration of its own, keeping these columns.
CREATE VIEW repository_holders AS
  SELECT CAST(NULL AS VARCHAR(32)) AS kind, CAST(NULL AS VARCHAR(255)) AS name,
    CAST(NULL AS VARCHAR(36)) AS repository_id, CAST(NULL AS VARCHAR(36)) AS version_id
  WHERE 1 = 0;
