-- Whether a sync leaves out the signatures, attestations and referrers of
-- the manifests it syncs (sync_referrers=false); by default it brings them.
ALTER TABLE remotes ADD COLUMN skip_referrers BOOLEAN NOT NULL DEFAULT FALSE;
