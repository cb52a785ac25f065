-- Per-version counts of added, removed and present units by type, written
-- when the version is made, so a summary never scans the membership.
ALTER TABLE repository_versions ADD COLUMN counts TEXT;
