package task

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/uptrace/bun"
)

// maxResourceLen is the longest resource key the schema holds.
const maxResourceLen = 1024

// Store enqueues, reads and cancels tasks. It works on a *bun.DB or inside
// a caller's transaction (bun.Tx), so a task can be enqueued atomically
// with the change that calls for it.
type Store struct {
	db bun.IDB
}

// NewStore returns a Store over db, which may be a *bun.DB, bun.Conn or
// bun.Tx. The tables must exist (see Migrate).
//
// With a *bun.DB, Enqueue wakes the Runners of this process at once and
// Cancel stops a task running in this process at once. Inside a
// transaction neither can know when the change commits, so Runners notice
// it on their next poll.
func NewStore(db bun.IDB) *Store { return &Store{db: db} }

// autocommit reports whether the Store's writes are committed when its
// methods return, so that signalling Runners is not premature.
func (s *Store) autocommit() bool {
	_, ok := s.db.(*bun.DB)
	return ok
}

// taskRow is a task as stored: lists are JSON text so both dialects hold
// them the same way.
type taskRow struct {
	bun.BaseModel `bun:"table:tasks"`

	ID               string     `bun:"id"`
	Name             string     `bun:"name"`
	State            State      `bun:"state"`
	Args             string     `bun:"args"`
	Resources        string     `bun:"resources"`
	CreatedAt        time.Time  `bun:"created_at"`
	StartedAt        *time.Time `bun:"started_at"`
	FinishedAt       *time.Time `bun:"finished_at"`
	Error            string     `bun:"error"`
	ProgressReports  string     `bun:"progress_reports"`
	CreatedResources string     `bun:"created_resources"`
	WorkerID         string     `bun:"worker_id"`
	CancelRequested  bool       `bun:"cancel_requested"`
	CreatedBy        string     `bun:"created_by"`
}

type reservationRow struct {
	bun.BaseModel `bun:"table:task_reservations"`

	TaskID   string `bun:"task_id"`
	Resource string `bun:"resource"`
}

func (r *taskRow) task() (*Task, error) {
	t := &Task{
		ID:              r.ID,
		Name:            r.Name,
		State:           r.State,
		Args:            json.RawMessage(r.Args),
		CreatedAt:       r.CreatedAt.UTC(),
		StartedAt:       utc(r.StartedAt),
		FinishedAt:      utc(r.FinishedAt),
		Error:           r.Error,
		WorkerID:        r.WorkerID,
		CancelRequested: r.CancelRequested,
		CreatedBy:       r.CreatedBy,
	}
	for _, f := range []struct {
		name string
		text string
		dst  any
	}{
		{"resources", r.Resources, &t.Resources},
		{"progress_reports", r.ProgressReports, &t.ProgressReports},
		{"created_resources", r.CreatedResources, &t.CreatedResources},
	} {
		if err := json.Unmarshal([]byte(f.text), f.dst); err != nil {
			return nil, fmt.Errorf("task %s: decode %s: %w", r.ID, f.name, err)
		}
	}
	if t.Resources == nil {
		t.Resources = []string{}
	}
	if t.ProgressReports == nil {
		t.ProgressReports = []ProgressReport{}
	}
	if t.CreatedResources == nil {
		t.CreatedResources = []string{}
	}
	return t, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// now is the time stamped on rows: UTC, at the precision both dialects
// store, so a Task returned by a call equals the one read back later.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on slices of strings and reports
	}
	return string(b)
}

// Enqueue stores a new waiting task. The task runs once no older waiting
// task and no running task shares any of its resources.
func (s *Store) Enqueue(ctx context.Context, spec Spec) (*Task, error) {
	if spec.Name == "" {
		return nil, errdef.New(errdef.ErrInvalid, "empty task name")
	}
	if len(spec.Name) > 255 {
		return nil, errdef.New(errdef.ErrInvalid, "task name longer than 255 bytes")
	}
	args, err := encodeArgs(spec.Args)
	if err != nil {
		return nil, errdef.New(errdef.ErrInvalid, "task %q args: %v", spec.Name, err)
	}
	resources := make([]string, 0, len(spec.Resources))
	seen := make(map[string]bool, len(spec.Resources))
	for _, r := range spec.Resources {
		switch {
		case r == "":
			return nil, errdef.New(errdef.ErrInvalid, "task %q: empty resource", spec.Name)
		case len(r) > maxResourceLen:
			return nil, errdef.New(errdef.ErrInvalid, "task %q: resource longer than %d bytes", spec.Name, maxResourceLen)
		case !seen[r]:
			seen[r] = true
			resources = append(resources, r)
		}
	}
	t := &Task{
		ID:               uuid.NewString(),
		Name:             spec.Name,
		State:            StateWaiting,
		Args:             args,
		Resources:        resources,
		CreatedAt:        now(),
		ProgressReports:  []ProgressReport{},
		CreatedResources: []string{},
	}
	row := &taskRow{
		ID:               t.ID,
		Name:             t.Name,
		State:            t.State,
		Args:             string(args),
		Resources:        mustJSON(resources),
		CreatedAt:        t.CreatedAt,
		ProgressReports:  "[]",
		CreatedResources: "[]",
		CreatedBy:        UserFrom(ctx),
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			return err
		}
		if len(resources) == 0 {
			return nil
		}
		rs := make([]reservationRow, len(resources))
		for i, r := range resources {
			rs[i] = reservationRow{TaskID: t.ID, Resource: r}
		}
		_, err := tx.NewInsert().Model(&rs).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue task %q: %w", spec.Name, err)
	}
	if s.autocommit() {
		notify()
	}
	return t, nil
}

func encodeArgs(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if len(raw) == 0 {
			return json.RawMessage("null"), nil
		}
		if !json.Valid(raw) {
			return nil, errors.New("not valid JSON")
		}
		return raw, nil
	}
	b, err := json.Marshal(v)
	return json.RawMessage(b), err
}

// Get returns the task with the given ID, or an error wrapping errdef.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Task, error) {
	return get(ctx, s.db, id)
}

func get(ctx context.Context, db bun.IDB, id string) (*Task, error) {
	var row taskRow
	err := db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errdef.New(errdef.ErrNotFound, "%s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return row.task()
}

// List returns the tasks matching f, newest first, and how many match f in
// all (ignoring Limit and Offset).
func (s *Store) List(ctx context.Context, f Filter) ([]Task, int, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, 0, errdef.New(errdef.ErrInvalid, "unknown task state %q", f.State)
	}
	if f.Limit < 0 || f.Offset < 0 {
		return nil, 0, errdef.New(errdef.ErrInvalid, "negative limit or offset")
	}
	var rows []taskRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("seq DESC")
	if f.State != "" {
		q = q.Where("state = ?", f.State)
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.CreatedBy != nil {
		q = q.Where("created_by = ?", *f.CreatedBy)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	} else if f.Offset > 0 {
		// SQLite accepts OFFSET only after a LIMIT; -1 would not do on
		// PostgreSQL, so use a bound no listing reaches.
		q = q.Limit(1<<31 - 1)
	}
	if f.Offset > 0 {
		q = q.Offset(int64(f.Offset))
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	out := make([]Task, 0, len(rows))
	for i := range rows {
		t, err := rows[i].task()
		if err != nil {
			return nil, 0, err
		}
		out = append(out, *t)
	}
	return out, int(total), nil
}

// Cancel cancels a task. A waiting task becomes canceled at once. A running
// task is asked to stop: its handler's context is canceled with cause
// ErrCanceled (within about a second when it runs in another process) and
// the task ends canceled unless the handler returns nil first, in which case
// it completed. Cancel returns the task as it is after the request; a
// finished task yields an error wrapping errdef.ErrConflict.
func (s *Store) Cancel(ctx context.Context, id string) (*Task, error) {
	var running bool
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE tasks SET state = ?, finished_at = ? WHERE id = ? AND state = ?",
			StateCanceled, now(), id, StateWaiting)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			_, err := tx.ExecContext(ctx, "DELETE FROM task_reservations WHERE task_id = ?", id)
			return err
		}
		res, err = tx.ExecContext(ctx, "UPDATE tasks SET cancel_requested = ? WHERE id = ? AND state = ?",
			true, id, StateRunning)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			running = true
			return nil
		}
		var st State
		err = tx.QueryRowContext(ctx, "SELECT state FROM tasks WHERE id = ?", id).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
			return errdef.New(errdef.ErrNotFound, "%s", id)
		}
		if err != nil {
			return err
		}
		return errdef.New(errdef.ErrConflict, "task %s is already %s", id, st)
	})
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) || errors.Is(err, errdef.ErrConflict) {
			return nil, err
		}
		return nil, fmt.Errorf("cancel task %s: %w", id, err)
	}
	if running && s.autocommit() {
		cancelLocal(id)
	}
	return s.Get(ctx, id)
}
