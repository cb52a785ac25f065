-- Download policy: immediate (every blob downloaded by the sync),
-- on_demand (layers recorded, fetched and stored when first pulled) or
-- streamed (layers fetched whenever pulled, never stored).
ALTER TABLE remotes ADD COLUMN policy VARCHAR(16) NOT NULL DEFAULT 'immediate';
