package client

import (
	"context"
	"net/http"
	"time"
)

// ProgressReport is one line of a task's progress.
type ProgressReport struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	State   string `json:"state"`
	Total   int64  `json:"total"`
	Done    int64  `json:"done"`
}

// Task is a background task.
type Task struct {
	Href       string     `json:"_href"`
	Created    time.Time  `json:"_created"`
	Name       string     `json:"name"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      *struct {
		Description string `json:"description"`
	} `json:"error"`
	ProgressReports  []ProgressReport `json:"progress_reports"`
	CreatedResources []string         `json:"created_resources"`
	Reserved         []string         `json:"reserved_resources_record"`
}

// Task states.
const (
	TaskWaiting   = "waiting"
	TaskRunning   = "running"
	TaskCompleted = "completed"
	TaskFailed    = "failed"
	TaskCanceled  = "canceled"
)

// Finished reports whether the task has reached a final state.
func (t *Task) Finished() bool {
	return t.State == TaskCompleted || t.State == TaskFailed || t.State == TaskCanceled
}

// Err returns nil for a completed task, else an error saying how it
// ended: a *TaskError.
func (t *Task) Err() error {
	if t.State == TaskCompleted {
		return nil
	}
	return &TaskError{Task: t}
}

// TaskError is a task that did not complete.
type TaskError struct{ Task *Task }

func (e *TaskError) Error() string {
	t := e.Task
	switch {
	case t.State == TaskFailed && t.Error != nil:
		return "task " + t.Name + " failed: " + t.Error.Description
	case t.State == TaskCanceled:
		return "task " + t.Name + " was canceled"
	}
	return "task " + t.Name + " is " + t.State
}

const tasksPath = APIRoot + "tasks/"

// ListTasks returns a page of tasks, newest first; filters state and name.
func (c *Client) ListTasks(ctx context.Context, o ListOptions) (*Page[Task], error) {
	return list[Task](ctx, c, tasksPath, o)
}

// Task returns the task at href.
func (c *Client) Task(ctx context.Context, href string) (*Task, error) {
	return get[Task](ctx, c, href)
}

// CancelTask asks for a task to be canceled and returns it as it then is.
func (c *Client) CancelTask(ctx context.Context, href string) (*Task, error) {
	return send[Task](ctx, c, http.MethodPatch, href, map[string]string{"state": TaskCanceled})
}

// WaitTask polls the task at href every poll (default 250ms) until it is
// finished and returns it; each time it is read, onUpdate (when not nil)
// sees it. It returns early only with ctx's error or the API's.
func (c *Client) WaitTask(ctx context.Context, href string, poll time.Duration, onUpdate func(*Task)) (*Task, error) {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		t, err := c.Task(ctx, href)
		if err != nil {
			return nil, err
		}
		if onUpdate != nil {
			onUpdate(t)
		}
		if t.Finished() {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-tick.C:
		}
	}
}
