package task

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/uptrace/bun"
)

// workerRow is a live Runner as recorded in the workers table.
type workerRow struct {
	bun.BaseModel `bun:"table:workers"`

	ID           string    `bun:"id"`
	Hostname     string    `bun:"hostname"`
	PID          int       `bun:"pid"`
	PIDNamespace string    `bun:"pid_namespace"`
	StartedAt    time.Time `bun:"started_at"`
	HeartbeatAt  time.Time `bun:"heartbeat_at"`
}

// machine identifies where this process runs: the hostname, and on Linux
// the PID namespace, because containers may share a hostname while their
// pids mean different processes.
type machine struct {
	hostname string
	pidNS    string
	pid      int
}

func thisMachine() machine {
	h, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return machine{hostname: h, pidNS: ns, pid: os.Getpid()}
}

// goneLocally reports whether w ran on this machine in a process that no
// longer exists. It errs towards "alive": a worker it cannot judge is left
// to the heartbeat timeout.
func (m machine) goneLocally(w *workerRow) bool {
	if m.hostname == "" || w.Hostname != m.hostname || w.PIDNamespace != m.pidNS {
		return false
	}
	if w.PID == m.pid {
		// This process: alive exactly when one of our Runners registered it.
		// A row with our pid but unknown ID is a previous process that had
		// the same pid (pid reuse across a restart).
		return !isLocalWorker(w.ID)
	}
	return !pidAlive(w.PID)
}

// touchWorker records a heartbeat for the Runner's worker, registering it
// again if its row is gone (another Runner took it for dead). It reports
// whether the row had to be re-created.
func (r *Runner) touchWorker(ctx context.Context, db bun.IDB, at time.Time) (recreated bool, err error) {
	res, err := db.ExecContext(ctx, "UPDATE workers SET heartbeat_at = ? WHERE id = ?", at, r.id)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return false, err
	}
	w := &workerRow{ID: r.id, Hostname: r.machine.hostname, PID: r.machine.pid, PIDNamespace: r.machine.pidNS, StartedAt: at, HeartbeatAt: at}
	_, err = db.NewInsert().Model(w).Exec(ctx)
	return true, err
}

// heartbeat keeps the worker row fresh and reaps dead workers until ctx is
// done.
func (r *Runner) heartbeat(ctx context.Context) {
	tick := time.NewTicker(r.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		recreated, err := r.touchWorker(ctx, r.db, now())
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("task worker heartbeat failed", "worker", r.id, "err", err)
		case recreated:
			// Our running tasks were failed by whoever reaped us; the
			// watcher cancels their handlers.
			r.log.Warn("task worker had been declared dead; registered again", "worker", r.id)
		}
		r.reap(ctx)
	}
}

// reap fails the running tasks of dead workers and forgets those workers:
// workers of this machine whose process is gone, workers whose heartbeat is
// older than DeadAfter, and tasks whose worker row no longer exists.
func (r *Runner) reap(ctx context.Context) {
	var ws []workerRow
	if err := r.db.NewSelect().Model(&ws).Where("id <> ?", r.id).Scan(ctx); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("list task workers", "err", err)
		}
		return
	}
	cutoff := now().Add(-r.opts.DeadAfter)
	for i := range ws {
		w := &ws[i]
		var reason string
		var staleBefore time.Time
		switch {
		case r.machine.goneLocally(w):
			reason = fmt.Sprintf("worker %s died: process %d on %s is gone", w.ID, w.PID, w.Hostname)
		case w.HeartbeatAt.Before(cutoff):
			reason = fmt.Sprintf("worker %s died: no heartbeat from process %d on %s since %s",
				w.ID, w.PID, w.Hostname, w.HeartbeatAt.UTC().Format(time.RFC3339))
			staleBefore = cutoff
		default:
			continue
		}
		if err := r.reapWorker(ctx, w.ID, staleBefore, reason); err != nil && ctx.Err() == nil {
			r.log.Warn("reap dead task worker", "worker", w.ID, "err", err)
		}
	}
	if err := r.reapOrphans(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("reap tasks of vanished workers", "err", err)
	}
}

// reapWorker deletes worker id and fails its running tasks with reason, in
// one transaction. With a non-zero staleBefore it does nothing if the
// worker has heartbeated since, so a worker that was only slow is spared.
func (r *Runner) reapWorker(ctx context.Context, id string, staleBefore time.Time, reason string) error {
	var failed []string
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		failed = nil
		q := tx.NewDelete().Model((*workerRow)(nil)).Where("id = ?", id)
		if !staleBefore.IsZero() {
			q = q.Where("heartbeat_at < ?", staleBefore)
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := tx.NewSelect().Model((*taskRow)(nil)).Column("id").
			Where("worker_id = ? AND state = ?", id, StateRunning).Scan(ctx, &failed); err != nil {
			return err
		}
		return failTasks(ctx, tx, failed, reason)
	})
	if err == nil && len(failed) > 0 {
		r.log.Warn("failed the tasks of a dead worker", "worker", id, "tasks", failed, "reason", reason)
		notify()
	}
	return err
}

// reapOrphans fails running tasks whose worker row is gone. Workers delete
// their row and fail their tasks in one transaction, so this only catches
// damage done outside this package.
func (r *Runner) reapOrphans(ctx context.Context) error {
	var rows []taskRow
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		rows = nil
		if err := tx.NewSelect().Model(&rows).Column("id", "worker_id").
			Where("state = ?", StateRunning).
			Where("worker_id NOT IN (SELECT id FROM workers)").Scan(ctx); err != nil {
			return err
		}
		for _, t := range rows {
			if err := failTasks(ctx, tx, []string{t.ID}, fmt.Sprintf("worker %s is gone", t.WorkerID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && len(rows) > 0 {
		r.log.Warn("failed running tasks whose worker is gone", "tasks", len(rows))
		notify()
	}
	return err
}

// failTasks marks the listed tasks failed if they are still running and
// releases their reservations.
func failTasks(ctx context.Context, tx bun.Tx, ids []string, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE tasks SET state = ?, error = ?, finished_at = ? WHERE id IN (?) AND state = ?",
		StateFailed, reason, now(), bun.In(ids), StateRunning); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "DELETE FROM task_reservations WHERE task_id IN (?)", bun.In(ids))
	return err
}
