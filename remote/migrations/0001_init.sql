-- Remotes: where a sync downloads from. Tag lists are JSON text arrays.
CREATE TABLE remotes (
  id VARCHAR(36) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  url TEXT NOT NULL,
  upstream_name VARCHAR(255) NOT NULL,
  whitelist_tags TEXT NOT NULL DEFAULT '[]',
  include_tags TEXT NOT NULL DEFAULT '[]',
  exclude_tags TEXT NOT NULL DEFAULT '[]',
  download_concurrency INTEGER NOT NULL,
  username TEXT NOT NULL DEFAULT '',
  password TEXT NOT NULL DEFAULT '',
  ssl_ca_certificate TEXT NOT NULL DEFAULT '',
  ssl_client_certificate TEXT NOT NULL DEFAULT '',
  ssl_client_key TEXT NOT NULL DEFAULT '',
  insecure_skip_verify BOOLEAN NOT NULL DEFAULT FALSE,
  proxy_url TEXT NOT NULL DEFAULT '',
  created_at TIMESTAMP NOT NULL
);
