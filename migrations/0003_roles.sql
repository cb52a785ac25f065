-- Users may be disabled and may be administrators.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET is_admin = TRUE WHERE username = 'admin';
-- Roles: a user's role on an object of a kind (global: object '').
CREATE TABLE IF NOT EXISTS user_roles (
  username VARCHAR(150) NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  role VARCHAR(32) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  object VARCHAR(255) NOT NULL,
  created_at TIMESTAMP NOT NULL,
  PRIMARY KEY (username, role, kind, object)
);
CREATE INDEX IF NOT EXISTS user_roles_object ON user_roles (kind, object);
