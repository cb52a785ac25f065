CREATE INDEX tasks_state_seq ON tasks (state, seq);
CREATE INDEX tasks_name_seq ON tasks (name, seq);
CREATE INDEX tasks_worker ON tasks (worker_id, state);
-- One row per resource a waiting or running task holds; rows are deleted
-- when the task finishes (tasks.resources keeps the record), so the claim
-- check only ever looks at live reservations.
CREATE TABLE task_reservations (
  task_id VARCHAR(36) NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  resource VARCHAR(1024) NOT NULL,
  PRIMARY KEY (task_id, resource)
);
CREATE INDEX task_reservations_resource ON task_reservations (resource, task_id);
-- Live task runners. pid_namespace tells two PID namespaces (containers)
-- sharing one hostname apart, so a pid is only checked where it means
-- the same process.
CREATE TABLE workers (
  id VARCHAR(36) PRIMARY KEY,
  hostname VARCHAR(255) NOT NULL,
  pid INTEGER NOT NULL,
  pid_namespace VARCHAR(64) NOT NULL DEFAULT '',
  started_at TIMESTAMP NOT NULL,
  heartbeat_at TIMESTAMP NOT NULL
);
