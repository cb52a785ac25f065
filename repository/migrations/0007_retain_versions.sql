-- How many of its newest versions a repository keeps (Pulp's
-- retain_repo_versions); NULL keeps them all. Older versions go as new ones
-- are made, except those a distribution serves.
ALTER TABLE repositories ADD COLUMN retain_versions INTEGER;
