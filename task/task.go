// Package task runs durable background work — syncs, copies, deletions —
// the way Pulp's tasking system does: a task is a row in the database, a
// Runner in any process sharing that database claims and runs it, and the
// task records its state, progress reports and the resources it created.
//
// Tasks name the resources they need (for example a repository ID). Tasks
// that share a resource run one at a time in the order they were created;
// tasks with disjoint resources run in parallel. A task is run at most
// once: if its worker dies or shuts down mid-run, the task is marked failed,
// never run again.
//
// Use a Store to enqueue, inspect and cancel tasks, and a Runner to execute
// them:
//
//	store := task.NewStore(db)
//	t, err := store.Enqueue(ctx, task.Spec{Name: "sync", Args: args, Resources: []string{repoID}})
//
//	r := task.NewRunner(db, task.Options{})
//	r.Register("sync", syncHandler)
//	err = r.Run(ctx) // until ctx is canceled
package task

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"time"

	"github.com/uptrace/bun"

	mooringdb "github.com/mooring-dev/mooring/internal/db"
)

// Errors returned by this package wrap errdef's sentinels with the task or
// value at fault: errdef.ErrNotFound means no task has the given ID;
// errdef.ErrConflict means the task's state does not allow the operation,
// such as canceling a task that has already finished; errdef.ErrInvalid
// means an argument was malformed: an empty task name or resource,
// arguments that do not encode as JSON, an unknown state.

// Causes a handler's context is canceled with; read them with
// context.Cause(ctx).
var (
	// ErrCanceled is the cause when the task was canceled through
	// Store.Cancel.
	ErrCanceled = errors.New("task canceled")
	// ErrShutdown is the cause when the worker running the task is shutting
	// down. The task will be marked failed unless the handler returns nil.
	ErrShutdown = errors.New("worker shutting down")
)

// State is the lifecycle state of a task or of one of its progress reports.
// The values are Pulp's.
type State string

// Task states. A task starts waiting, becomes running when a worker claims
// it, and ends completed, failed or canceled.
const (
	StateWaiting   State = "waiting"
	StateRunning   State = "running"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCanceled  State = "canceled"
)

// Valid reports whether s is one of the task states.
func (s State) Valid() bool {
	switch s {
	case StateWaiting, StateRunning, StateCompleted, StateFailed, StateCanceled:
		return true
	}
	return false
}

// Finished reports whether s is a final state: completed, failed or
// canceled.
func (s State) Finished() bool {
	return s == StateCompleted || s == StateFailed || s == StateCanceled
}

// Task is one unit of background work and its outcome. JSON field names
// follow Pulp's task representation; the REST layer adds hrefs.
type Task struct {
	// ID is the task's UUID.
	ID string `json:"id"`
	// Name selects the handler that runs the task, such as "sync".
	Name string `json:"name"`
	// State is where the task is in its lifecycle.
	State State `json:"state"`
	// Args is the handler's input, as given to Enqueue, in JSON.
	Args json.RawMessage `json:"args,omitempty"`
	// Resources are the lock keys the task holds while waiting or running.
	Resources []string `json:"reserved_resources_record"`
	// CreatedAt is when the task was enqueued.
	CreatedAt time.Time `json:"pulp_created"`
	// StartedAt is when a worker claimed the task; nil while waiting.
	StartedAt *time.Time `json:"started_at"`
	// FinishedAt is when the task reached a final state; nil before.
	FinishedAt *time.Time `json:"finished_at"`
	// Error describes why the task failed; empty unless State is failed.
	Error string `json:"error,omitempty"`
	// ProgressReports are the handler's progress reports, in the order
	// they were started.
	ProgressReports []ProgressReport `json:"progress_reports"`
	// CreatedResources lists what the task created, such as the href of a
	// new repository version.
	CreatedResources []string `json:"created_resources"`
	// CreatedBy is the user whose request enqueued the task (WithUser),
	// empty for the system.
	CreatedBy string `json:"-"`
	// WorkerID is the worker that claimed the task; empty while waiting.
	WorkerID string `json:"worker,omitempty"`
	// CancelRequested is set when a running task has been asked to cancel
	// and has not yet stopped (Pulp shows such a task as "canceling").
	CancelRequested bool `json:"cancel_requested,omitempty"`
}

// ProgressReport is one line of a task's progress, such as "Downloading
// tag list: 3 of 10". Fields follow Pulp's progress report.
type ProgressReport struct {
	// Message is the human-readable description.
	Message string `json:"message"`
	// Code identifies the report for machines, such as "sync.downloading.tag_list".
	Code string `json:"code"`
	// State is running while the work goes on, then completed, failed or
	// canceled.
	State State `json:"state"`
	// Total is the number of items expected; 0 if unknown.
	Total int64 `json:"total"`
	// Done is the number of items done so far.
	Done int64 `json:"done"`
}

// Spec describes a task to enqueue.
type Spec struct {
	// Name selects the handler; it must be non-empty.
	Name string
	// Args is the handler's input. It is stored as JSON: a
	// json.RawMessage is kept as is, anything else is marshalled. nil is
	// stored as JSON null.
	Args any
	// Resources are lock keys, such as a repository ID. Tasks sharing a key
	// run one at a time in creation order. Duplicates are ignored; empty
	// keys are invalid.
	Resources []string
}

// Filter selects tasks for Store.List. Zero fields do not filter.
type Filter struct {
	// CreatedBy, when not nil, keeps the tasks that user enqueued.
	CreatedBy *string
	// State keeps tasks in this state.
	State State
	// Name keeps tasks with this name.
	Name string
	// Limit caps the number of tasks returned; 0 means no cap.
	Limit int
	// Offset skips this many tasks of the ordered result.
	Offset int
}

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates the tables of this package: tasks,
// task_reservations and workers. It is idempotent and safe to run from
// several processes at once.
func Migrate(ctx context.Context, db *bun.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return mooringdb.Migrate(ctx, db, mooringdb.Migrations{Set: "task", FS: sub})
}

type userKey struct{}

// WithUser returns ctx naming user as the one on whose behalf tasks are
// enqueued (Task.CreatedBy).
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the user WithUser named, or "".
func UserFrom(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}
