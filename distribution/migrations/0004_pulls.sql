-- When each blob was last pulled, written in batches by Registry.FlushPulls
-- (never once per request): the order in which a pull-through cache over
-- its budget gives stored bytes back.
CREATE TABLE blob_pulls (
  digest VARCHAR(160) PRIMARY KEY,
  pulled_at TIMESTAMP NOT NULL
);
-- Pull-through distributions use their pull-through remote: the remote
-- package's DeletePullThrough reads this view (defined empty by its
-- migration 0003) and refuses while a row names the remote.
DROP VIEW IF EXISTS pull_through_remote_users;
CREATE VIEW pull_through_remote_users AS
  SELECT CAST('pull-through distribution' AS VARCHAR(32)) AS kind, p.name, p.remote_id
  FROM pull_through_distributions AS p;
