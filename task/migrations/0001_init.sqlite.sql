-- Tasks, the resources they reserve while waiting or running, and the
-- workers that run them. seq orders tasks by creation (FIFO per resource).
CREATE TABLE tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id VARCHAR(36) NOT NULL UNIQUE,
  name VARCHAR(255) NOT NULL,
  state VARCHAR(16) NOT NULL,
  args TEXT NOT NULL,
  resources TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  started_at TIMESTAMP,
  finished_at TIMESTAMP,
  error TEXT NOT NULL DEFAULT '',
  progress_reports TEXT NOT NULL DEFAULT '[]',
  created_resources TEXT NOT NULL DEFAULT '[]',
  worker_id VARCHAR(36) NOT NULL DEFAULT '',
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
