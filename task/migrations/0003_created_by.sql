-- Who enqueued a task ('' for the system), so users see their own tasks.
ALTER TABLE tasks ADD COLUMN created_by VARCHAR(150) NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS tasks_created_by ON tasks (created_by);
