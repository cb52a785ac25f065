-- The key registry tokens are signed with, generated once and shared by
-- every process on the database (unless a key file is configured).
CREATE TABLE IF NOT EXISTS signing_keys (
  id VARCHAR(64) PRIMARY KEY,
  private_key TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL
);
