-- A private distribution is pulled only by users with a role on it.
ALTER TABLE distributions ADD COLUMN private BOOLEAN NOT NULL DEFAULT FALSE;
