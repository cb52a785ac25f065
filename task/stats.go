package task

import (
	"context"
	"fmt"
	"time"
)

// Worker is a live Runner as recorded in the database: where it runs and
// when it last proved it is alive.
type Worker struct {
	// ID is the Runner's WorkerID.
	ID string `json:"id"`
	// Hostname and PID say where it runs.
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
	// StartedAt is when it registered; HeartbeatAt when it last proved it
	// is alive (every Options.Heartbeat).
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"last_heartbeat"`
}

// Workers returns the Runners of every process sharing the database whose
// last heartbeat is newer than since, oldest first. A Runner that stopped
// cleanly is gone at once; one that died lingers until its heartbeat is
// older than since (or a live Runner reaps it).
func (s *Store) Workers(ctx context.Context, since time.Time) ([]Worker, error) {
	var rows []workerRow
	if err := s.db.NewSelect().Model(&rows).Where("heartbeat_at > ?", since.UTC()).OrderExpr("started_at, id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list task workers: %w", err)
	}
	out := make([]Worker, len(rows))
	for i, w := range rows {
		out[i] = Worker{ID: w.ID, Hostname: w.Hostname, PID: w.PID, StartedAt: w.StartedAt.UTC(), HeartbeatAt: w.HeartbeatAt.UTC()}
	}
	return out, nil
}

// Queue counts the tasks not yet finished: Waiting for a worker (the queue
// depth) and Running.
type Queue struct {
	Waiting, Running int
}

// Queue returns how many tasks wait and run now, across every process
// sharing the database.
func (s *Store) Queue(ctx context.Context) (Queue, error) {
	var rows []struct {
		State State `bun:"state"`
		N     int   `bun:"n"`
	}
	err := s.db.NewSelect().TableExpr("tasks").ColumnExpr("state, count(*) AS n").
		Where("state IN (?, ?)", StateWaiting, StateRunning).GroupExpr("state").Scan(ctx, &rows)
	if err != nil {
		return Queue{}, fmt.Errorf("count tasks: %w", err)
	}
	var q Queue
	for _, r := range rows {
		switch r.State {
		case StateWaiting:
			q.Waiting = r.N
		case StateRunning:
			q.Running = r.N
		}
	}
	return q, nil
}
