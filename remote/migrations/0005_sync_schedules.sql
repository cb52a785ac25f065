-- Sync schedules: a remote synced into a repository every interval. A
-- schedule goes with its remote or repository. next_run is the start of
-- the next period; the dispatcher that moves it on (compare-and-set)
-- enqueues that period's sync, so each period is dispatched once however
-- many processes share the database. repository_key and remote_key are
-- the task resource keys of the syncs it enqueues.
CREATE TABLE sync_schedules (
  id VARCHAR(36) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  remote_id VARCHAR(36) NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
  repository_id VARCHAR(36) NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  mirror BOOLEAN NOT NULL DEFAULT FALSE,
  interval_seconds BIGINT NOT NULL,
  next_run TIMESTAMP NOT NULL,
  last_run TIMESTAMP,
  last_task_id VARCHAR(36) NOT NULL DEFAULT '',
  skipped BIGINT NOT NULL DEFAULT 0,
  repository_key VARCHAR(1024) NOT NULL,
  remote_key VARCHAR(1024) NOT NULL,
  created_at TIMESTAMP NOT NULL
);
CREATE INDEX sync_schedules_next_run ON sync_schedules (next_run);
CREATE INDEX sync_schedules_remote ON sync_schedules (remote_id);
CREATE INDEX sync_schedules_repository ON sync_schedules (repository_id);
