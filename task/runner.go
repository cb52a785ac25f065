package task

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// progressInterval is the most often a task's changing counts are written.
const progressInterval = 500 * time.Millisecond

// claimLockKey is the first key of the PostgreSQL advisory lock that
// serialises claims; the second is a hash of the schema, so databases in
// different schemas do not contend.
const claimLockKey = 0x6d6f6f72 // "moor"

// errLost is the cause when a task stops being this worker's: another
// Runner took the worker for dead and failed the task.
var errLost = errors.New("task was taken from this worker")

// Handler runs one task. It should return promptly when ctx is done;
// context.Cause(ctx) then tells why (ErrCanceled, ErrShutdown). A nil
// return completes the task; an error fails it with the error's message
// (or cancels it, after Store.Cancel). A panic fails it with the panic
// value.
type Handler func(ctx context.Context, t *Task, p *Progress) error

// Options configure a Runner. Zero fields take the documented defaults.
// Runners sharing a database should use the same Heartbeat and DeadAfter.
type Options struct {
	// Workers is how many tasks run at once. Default 2.
	Workers int
	// PollInterval is how often the database is checked for runnable
	// tasks when nothing in this process signalled one, and (capped at one
	// second) how often running tasks are checked for cancel requests.
	// Default 500ms.
	PollInterval time.Duration
	// Heartbeat is how often the worker proves it is alive and looks for
	// dead workers. Default 5s.
	Heartbeat time.Duration
	// DeadAfter is how long without a heartbeat before a worker is taken
	// for dead and its running tasks failed. Default 30s; raised to at
	// least twice Heartbeat.
	DeadAfter time.Duration
	// ShutdownTimeout is how long Run waits, once its context is
	// canceled, for handlers to return. Tasks whose handlers have not
	// returned by then are marked failed anyway. Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives the Runner's logs; nil discards them.
	Logger *slog.Logger
	// OnFinish, when set, is called after each task this Runner ran has
	// its outcome recorded, with the task's name, its final state and how
	// long its handler ran: the hook metrics are kept by. It must not
	// block.
	OnFinish func(name string, state State, ran time.Duration)
}

// Runner is a pool of workers that claim waiting tasks from the database
// and run them with the registered handlers. Any number of Runners, in one
// process or many, may share a database.
//
// Every Runner sharing a database should register the same task names: a
// Runner claims any runnable task and fails one it has no handler for.
//
// Open SQLite with Mooring's internal/db.Open, whose transactions take the
// write lock at BEGIN: that is what serialises claims there.
//
// Liveness is judged by wall-clock heartbeats, so machines sharing a
// PostgreSQL database need synchronised clocks, well within DeadAfter.
type Runner struct {
	db      *bun.DB
	opts    Options
	log     *slog.Logger
	id      string
	machine machine

	mu       sync.Mutex
	handlers map[string]Handler
	started  bool
	active   map[string]context.CancelCauseFunc // running task ID -> cancel
	periodic []periodic
}

// NewRunner returns a Runner over db, whose tables must exist (see
// Migrate). It does nothing until Run.
func NewRunner(db *bun.DB, opts Options) *Runner {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 5 * time.Second
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = 30 * time.Second
	}
	opts.DeadAfter = max(opts.DeadAfter, 2*opts.Heartbeat)
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		db:       db,
		opts:     opts,
		log:      opts.Logger,
		id:       uuid.NewString(),
		machine:  thisMachine(),
		handlers: map[string]Handler{},
		active:   map[string]context.CancelCauseFunc{},
	}
}

// WorkerID returns the ID under which the Runner registers in the workers
// table and which it stamps on the tasks it claims.
func (r *Runner) WorkerID() string { return r.id }

// Register sets the handler for tasks named name. Like http.ServeMux it
// panics on an empty name, a nil handler or a name registered twice. It may
// be called while the Runner runs.
func (r *Runner) Register(name string, h Handler) {
	if name == "" || h == nil {
		panic("task: Register with an empty name or nil handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.handlers[name]; dup {
		panic(fmt.Sprintf("task: handler for %q registered twice", name))
	}
	r.handlers[name] = h
}

func (r *Runner) handler(name string) Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handlers[name]
}

// Run registers the worker, fails the tasks of workers found dead, and runs
// tasks until ctx is canceled. Then it stops claiming, cancels the running
// handlers' contexts with cause ErrShutdown and waits up to
// ShutdownTimeout for them. A task whose handler returned nil is completed;
// every other task still running is marked failed ("worker … shut down"),
// never requeued, because its handler may have done part of its work. Run
// returns nil after such a shutdown, or an error if the worker could not
// register. It may be called once.
//
// A handler that ignores its context may still be running when Run
// returns; whatever it returns later is discarded.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	started := r.started
	r.started = true
	r.mu.Unlock()
	if started {
		return errdef.New(errdef.ErrConflict, "Runner.Run called twice")
	}

	// Known to this process before the row exists, so a concurrent reaper
	// here never takes it for a previous process with our pid.
	addLocalWorker(r.id)
	defer removeLocalWorker(r.id)
	if _, err := r.touchWorker(ctx, r.db, now()); err != nil {
		return fmt.Errorf("register task worker: %w", err)
	}
	r.log.Info("task worker started", "worker", r.id, "host", r.machine.hostname, "pid", r.machine.pid, "workers", r.opts.Workers)
	r.reap(ctx)

	// The heartbeat outlives ctx until the handlers have returned, so a
	// slow shutdown is not mistaken for death.
	var bg sync.WaitGroup
	hbCtx, stopHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	bg.Go(func() { r.heartbeat(hbCtx) })
	r.runPeriodic(ctx, &bg)

	// Handlers get a context of their own so that shutdown cancels them
	// with a cause, and they keep ctx's values.
	base, stopAll := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopAll(nil)

	wake := subscribe()
	defer unsubscribe(wake)
	poll := time.NewTicker(r.opts.PollInterval)
	defer poll.Stop()
	watch := time.NewTicker(min(r.opts.PollInterval, time.Second))
	defer watch.Stop()

	// free + finished-but-unreceived + running == Workers, so sends on
	// done never block, even from handlers that outlive Run.
	done := make(chan struct{}, r.opts.Workers)
	free := r.opts.Workers
	var execs sync.WaitGroup
	for ctx.Err() == nil {
		for free > 0 {
			t, err := r.claim(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("claim task", "worker", r.id, "err", err)
				}
				break
			}
			if t == nil {
				break
			}
			free--
			hctx, cancel := context.WithCancelCause(base)
			r.track(t.ID, cancel)
			execs.Go(func() {
				defer func() { done <- struct{}{} }()
				r.execute(hctx, t)
			})
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-poll.C:
		case <-done:
			free++
		case <-watch.C:
			r.watch(ctx)
		}
	}

	r.log.Info("task worker stopping", "worker", r.id)
	stopAll(ErrShutdown)
	finished := make(chan struct{})
	go func() { execs.Wait(); close(finished) }()
	timer := time.NewTimer(r.opts.ShutdownTimeout)
	select {
	case <-finished:
		timer.Stop()
	case <-timer.C:
		r.log.Warn("task handlers did not return in time; failing their tasks", "worker", r.id, "timeout", r.opts.ShutdownTimeout)
	}
	stopHeartbeat()
	bg.Wait()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.deregister(cctx); err != nil {
		r.log.Error("deregister task worker; its tasks are failed once it is taken for dead", "worker", r.id, "err", err)
	}
	r.log.Info("task worker stopped", "worker", r.id)
	return nil
}

// deregister fails the tasks still running under this worker and deletes
// its row, in one transaction.
func (r *Runner) deregister(ctx context.Context) error {
	var ids []string
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		ids = nil
		if err := tx.NewSelect().Model((*taskRow)(nil)).Column("id").
			Where("worker_id = ? AND state = ?", r.id, StateRunning).Scan(ctx, &ids); err != nil {
			return err
		}
		if err := failTasks(ctx, tx, ids, fmt.Sprintf("worker %s shut down before the task finished", r.id)); err != nil {
			return err
		}
		_, err := tx.NewDelete().Model((*workerRow)(nil)).Where("id = ?", r.id).Exec(ctx)
		return err
	})
	if err == nil && len(ids) > 0 {
		r.log.Warn("failed tasks still running at shutdown", "worker", r.id, "tasks", ids)
		notify()
	}
	return err
}

func (r *Runner) track(id string, cancel context.CancelCauseFunc) {
	r.mu.Lock()
	r.active[id] = cancel
	r.mu.Unlock()
	trackLocal(id, cancel)
}

func (r *Runner) untrack(id string) {
	untrackLocal(id)
	r.mu.Lock()
	delete(r.active, id)
	r.mu.Unlock()
}

// claimable selects the oldest waiting task that no running task and no
// older waiting task shares a resource with. Reservations exist only for
// waiting and running tasks, so the check reads the live ones by index.
const claimable = `SELECT t.id FROM tasks AS t
WHERE t.state = ? AND NOT EXISTS (
	SELECT 1 FROM task_reservations AS mine
	JOIN task_reservations AS other ON other.resource = mine.resource AND other.task_id <> mine.task_id
	JOIN tasks AS o ON o.id = other.task_id
	WHERE mine.task_id = t.id AND (o.state = ? OR (o.state = ? AND o.seq < t.seq))
)
ORDER BY t.seq LIMIT 1`

func nextClaimable(ctx context.Context, db bun.IDB) (string, error) {
	var id string
	err := db.QueryRowContext(ctx, claimable, StateWaiting, StateRunning, StateWaiting).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// claim marks the next runnable task running under this worker and
// returns it, or returns nil if there is none.
//
// The check and the update must not interleave with another claimer's:
// on SQLite every transaction takes the write lock at BEGIN; on PostgreSQL
// claimers take an advisory transaction lock, and READ COMMITTED makes each
// statement after it see what the previous holder committed.
func (r *Runner) claim(ctx context.Context) (*Task, error) {
	// Look first without a transaction, so an idle poll takes no lock.
	if id, err := nextClaimable(ctx, r.db); err != nil || id == "" {
		return nil, err
	}
	pg := r.db.Dialect().Name() == dialect.PG
	var opts *sql.TxOptions
	if pg {
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	var claimed *Task
	err := r.db.RunInTx(ctx, opts, func(ctx context.Context, tx bun.Tx) error {
		claimed = nil
		if pg {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?, hashtext(coalesce(current_schema(), '')))", claimLockKey); err != nil {
				return err
			}
		}
		at := now()
		// Refresh (or restore) the worker row in the same transaction, so a
		// running task always has a worker row a reaper can judge.
		if _, err := r.touchWorker(ctx, tx, at); err != nil {
			return err
		}
		for {
			id, err := nextClaimable(ctx, tx)
			if err != nil || id == "" {
				return err
			}
			res, err := tx.ExecContext(ctx, "UPDATE tasks SET state = ?, worker_id = ?, started_at = ? WHERE id = ? AND state = ?",
				StateRunning, r.id, at, id, StateWaiting)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 1 {
				claimed, err = get(ctx, tx, id)
				return err
			}
			// Canceled since the check (Cancel does not take the claim
			// lock); look again.
		}
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// execute runs a claimed task's handler and records the outcome.
func (r *Runner) execute(ctx context.Context, t *Task) {
	defer r.untrack(t.ID)
	p := newProgress()
	start := time.Now()
	stopFlush := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() { r.flush(t.ID, p, stopFlush) })

	var err error
	if h := r.handler(t.Name); h == nil {
		err = fmt.Errorf("no handler registered for task name %q", t.Name)
	} else {
		arg := *t
		arg.Resources = slices.Clone(t.Resources)
		err = r.call(ctx, h, &arg, p)
	}
	close(stopFlush)
	flusher.Wait()

	cause := context.Cause(ctx)
	var state State
	var msg string
	switch {
	case errors.Is(cause, errLost):
		r.log.Warn("task was failed by another worker while running here; its result is discarded", "task", t.ID, "worker", r.id, "err", err)
		return
	case err == nil:
		state = StateCompleted
	case errors.Is(cause, ErrCanceled):
		state = StateCanceled
	case errors.Is(cause, ErrShutdown):
		state, msg = StateFailed, fmt.Sprintf("worker %s shut down before the task finished: %v", r.id, err)
	default:
		state, msg = StateFailed, err.Error()
		if msg == "" {
			msg = fmt.Sprintf("task failed with an empty %T error", err)
		}
	}
	reports, created := p.final(state)
	r.finish(context.WithoutCancel(ctx), t, state, msg, reports, created)
	if r.opts.OnFinish != nil {
		r.opts.OnFinish(t.Name, state, time.Since(start))
	}
}

// call runs h, turning a panic into an error so the worker survives.
func (r *Runner) call(ctx context.Context, h Handler, t *Task, p *Progress) (err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("task handler panicked", "task", t.ID, "name", t.Name, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return h(ctx, t, p)
}

// finish records a task's outcome, retrying briefly: if the database stays
// unreachable the task is left running, and the watcher fails it.
func (r *Runner) finish(ctx context.Context, t *Task, state State, msg string, reports []ProgressReport, created []string) {
	for attempt := 0; ; attempt++ {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ok, err := r.finishOnce(fctx, t.ID, state, msg, reports, created)
		cancel()
		switch {
		case err == nil && ok:
			notify()
			return
		case err == nil:
			r.log.Warn("task was finished elsewhere before its handler returned; result discarded", "task", t.ID, "state", state)
			return
		case attempt == 4:
			r.log.Error("record task outcome", "task", t.ID, "state", state, "err", err)
			return
		}
		time.Sleep(100 * time.Millisecond << attempt)
	}
}

// finishOnce sets the final state of a task this worker runs and releases
// its reservations. It reports false if the task is no longer running
// under this worker (a reaper failed it): that outcome stands.
func (r *Runner) finishOnce(ctx context.Context, id string, state State, msg string, reports []ProgressReport, created []string) (bool, error) {
	var ok bool
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET state = ?, error = ?, finished_at = ?, progress_reports = ?, created_resources = ?
			WHERE id = ? AND state = ? AND worker_id = ?`,
			state, msg, now(), mustJSON(reports), mustJSON(created), id, StateRunning, r.id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		ok = true
		_, err = tx.ExecContext(ctx, "DELETE FROM task_reservations WHERE task_id = ?", id)
		return err
	})
	return ok, err
}

// flush writes a running task's progress as it changes until stop closes.
func (r *Runner) flush(id string, p *Progress, stop <-chan struct{}) {
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-p.urgent:
		case <-tick.C:
		}
		reports, created, ok := p.pending()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := r.db.ExecContext(ctx, "UPDATE tasks SET progress_reports = ?, created_resources = ? WHERE id = ? AND state = ? AND worker_id = ?",
			mustJSON(reports), mustJSON(created), id, StateRunning, r.id)
		cancel()
		if err != nil {
			r.log.Warn("write task progress", "task", id, "err", err)
			p.redirty()
		}
	}
}

// watch compares the tasks this worker runs with the database: it cancels
// handlers whose task was asked to cancel (from any process) or was taken
// from this worker, and fails tasks the database says run here but no
// handler runs (their outcome could not be recorded).
func (r *Runner) watch(ctx context.Context) {
	r.mu.Lock()
	active := make(map[string]context.CancelCauseFunc, len(r.active))
	for id, c := range r.active {
		active[id] = c
	}
	r.mu.Unlock()

	var rows []taskRow
	q := r.db.NewSelect().Model(&rows).Column("id", "state", "worker_id", "cancel_requested").
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			q = q.Where("worker_id = ? AND state = ?", r.id, StateRunning)
			if len(active) > 0 {
				q = q.WhereOr("id IN (?)", bun.In(keys(active)))
			}
			return q
		})
	if err := q.Scan(ctx); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("check running tasks", "worker", r.id, "err", err)
		}
		return
	}
	var orphans []string
	for _, row := range rows {
		mine := row.State == StateRunning && row.WorkerID == r.id
		cancel, running := active[row.ID]
		switch {
		case running && !mine:
			cancel(errLost)
		case running && row.CancelRequested:
			cancel(ErrCanceled)
		case !running && mine:
			orphans = append(orphans, row.ID)
		}
	}
	if len(orphans) == 0 {
		return
	}
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return failTasks(ctx, tx, orphans, fmt.Sprintf("worker %s could not record the task's outcome", r.id))
	})
	if err != nil && ctx.Err() == nil {
		r.log.Warn("fail tasks whose outcome was lost", "worker", r.id, "tasks", orphans, "err", err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
