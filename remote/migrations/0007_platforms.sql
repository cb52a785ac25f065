-- A remote's platform filter (include_platforms): a JSON text array of
-- "os/architecture[/variant]" entries, like the tag lists; [] keeps every
-- manifest of a list.
ALTER TABLE remotes ADD COLUMN include_platforms TEXT NOT NULL DEFAULT '[]';
