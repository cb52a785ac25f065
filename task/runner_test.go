package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/task"
)

func TestRunCompletesWithProgress(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		r := task.NewRunner(d, fast(2))
		release := make(chan struct{})
		r.Register("sync", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			var args struct {
				Tags int `json:"tags"`
			}
			if err := json.Unmarshal(tk.Args, &args); err != nil {
				return err
			}
			tags := p.Report("sync.downloading.tags", "Downloading tags", int64(args.Tags))
			for range args.Tags {
				tags.Increment()
			}
			<-release
			tags.Complete()
			p.Report("sync.saving", "Saving content", 0) // left running: ends with the task
			p.Created("/pulp/api/v3/repositories/r1/versions/1/")
			return nil
		})
		start(t, r)
		tk, err := s.Enqueue(ctx, task.Spec{Name: "sync", Args: map[string]int{"tags": 3}, Resources: []string{"r1"}})
		if err != nil {
			t.Fatal(err)
		}

		// Progress is written while the task runs, not only at the end.
		waitFor(t, "progress of the running task", func() bool {
			got, err := s.Get(ctx, tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.State == task.StateRunning && len(got.ProgressReports) == 1 && got.ProgressReports[0].Done == 3
		})
		close(release)

		got := waitFinished(t, s, tk.ID)
		if got.State != task.StateCompleted || got.Error != "" {
			t.Fatalf("task ended %s with error %q", got.State, got.Error)
		}
		wantReports := []task.ProgressReport{
			{Message: "Downloading tags", Code: "sync.downloading.tags", State: task.StateCompleted, Total: 3, Done: 3},
			{Message: "Saving content", Code: "sync.saving", State: task.StateCompleted},
		}
		if !reflect.DeepEqual(got.ProgressReports, wantReports) {
			t.Errorf("progress reports = %+v, want %+v", got.ProgressReports, wantReports)
		}
		if want := []string{"/pulp/api/v3/repositories/r1/versions/1/"}; !reflect.DeepEqual(got.CreatedResources, want) {
			t.Errorf("created resources = %q, want %q", got.CreatedResources, want)
		}
		if got.WorkerID != r.WorkerID() {
			t.Errorf("worker = %q, want %q", got.WorkerID, r.WorkerID())
		}
		if got.StartedAt == nil || got.FinishedAt == nil || got.StartedAt.Before(got.CreatedAt) || got.FinishedAt.Before(*got.StartedAt) {
			t.Errorf("times out of order: created %v, started %v, finished %v", got.CreatedAt, got.StartedAt, got.FinishedAt)
		}
	})
}

func TestFailures(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		r := task.NewRunner(d, fast(1))
		r.Register("fail", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			return fmt.Errorf("sync failed: %w", errors.New("upstream returned 503"))
		})
		r.Register("panic", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			p.Report("sync.parsing", "Parsing manifests", 10).Increment()
			var m map[string]int
			m["boom"]++
			return nil
		})
		r.Register("ok", func(ctx context.Context, tk *task.Task, p *task.Progress) error { return nil })
		var ids []string
		for _, name := range []string{"fail", "panic", "unknown", "ok"} {
			tk, err := s.Enqueue(ctx, task.Spec{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tk.ID)
		}
		start(t, r) // one worker: the last task runs only if the worker survived the panic

		failed := waitFinished(t, s, ids[0])
		if failed.State != task.StateFailed || failed.Error != "sync failed: upstream returned 503" {
			t.Errorf("failing task: %s, %q", failed.State, failed.Error)
		}
		panicked := waitFinished(t, s, ids[1])
		if panicked.State != task.StateFailed || !strings.HasPrefix(panicked.Error, "panic: assignment to entry in nil map") {
			t.Errorf("panicking task: %s, %q", panicked.State, panicked.Error)
		}
		if len(panicked.ProgressReports) != 1 || panicked.ProgressReports[0].State != task.StateFailed || panicked.ProgressReports[0].Done != 1 {
			t.Errorf("panicking task's report = %+v, want failed with 1 done", panicked.ProgressReports)
		}
		unknown := waitFinished(t, s, ids[2])
		if unknown.State != task.StateFailed || unknown.Error != `no handler registered for task name "unknown"` {
			t.Errorf("unknown task: %s, %q", unknown.State, unknown.Error)
		}
		if ok := waitFinished(t, s, ids[3]); ok.State != task.StateCompleted {
			t.Errorf("task after a panic: %s, %q", ok.State, ok.Error)
		}
	})
}

// span is when a handler ran, by the test's clock.
type span struct {
	id         string
	start, end time.Time
}

type spans struct {
	mu   sync.Mutex
	list []span
}

// record runs f between a recorded start and end.
func (s *spans) record(id string, f func()) {
	sp := span{id: id, start: time.Now()}
	f()
	sp.end = time.Now()
	s.mu.Lock()
	s.list = append(s.list, sp)
	s.mu.Unlock()
}

func (s *spans) get(id string) span {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.list {
		if sp.id == id {
			return sp
		}
	}
	return span{}
}

func TestSharedResourceRunsInOrderOneAtATime(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		r := task.NewRunner(d, fast(4))
		var ran spans
		r.Register("step", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			ran.record(tk.ID, func() { time.Sleep(20 * time.Millisecond) })
			return nil
		})
		var ids []string
		for range 5 {
			tk, err := s.Enqueue(ctx, task.Spec{Name: "step", Resources: []string{"repo-a"}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tk.ID)
		}
		start(t, r)
		var done []*task.Task
		for _, id := range ids {
			done = append(done, waitFinished(t, s, id))
		}
		for i := 1; i < len(ids); i++ {
			prev, cur := ran.get(ids[i-1]), ran.get(ids[i])
			if cur.start.Before(prev.end) {
				t.Errorf("task %d started before task %d ended", i, i-1)
			}
			if done[i].StartedAt.Before(*done[i-1].FinishedAt) {
				t.Errorf("task %d recorded start %v before task %d's finish %v", i, done[i].StartedAt, i-1, done[i-1].FinishedAt)
			}
		}
	})
}

func TestOlderWaitingTaskIsNotOvertaken(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		r := task.NewRunner(d, fast(4))
		var ran spans
		release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "ab": nil, "b2": nil}
		r.Register("step", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			var name string
			if err := json.Unmarshal(tk.Args, &name); err != nil {
				return err
			}
			ran.record(name, func() {
				if c := release[name]; c != nil {
					<-c
				}
			})
			return nil
		})
		ids := map[string]string{}
		for _, spec := range []struct {
			name string
			res  []string
		}{{"a", []string{"A"}}, {"b", []string{"B"}}, {"ab", []string{"A", "B"}}, {"b2", []string{"B"}}} {
			tk, err := s.Enqueue(ctx, task.Spec{Name: "step", Args: spec.name, Resources: spec.res})
			if err != nil {
				t.Fatal(err)
			}
			ids[spec.name] = tk.ID
		}
		start(t, r)
		// Free B while "ab" still waits for A: "b2" shares only B and is
		// free to run, but must not overtake the older "ab".
		close(release["b"])
		waitFinished(t, s, ids["b"])
		time.Sleep(100 * time.Millisecond) // several polls in which b2 could wrongly start
		if got, _ := s.Get(ctx, ids["b2"]); got.State != task.StateWaiting {
			t.Errorf("b2 is %s while an older task sharing B waits", got.State)
		}
		close(release["a"])
		for _, id := range ids {
			if got := waitFinished(t, s, id); got.State != task.StateCompleted {
				t.Fatalf("task %s ended %s: %s", id, got.State, got.Error)
			}
		}
		a, b, ab, b2 := ran.get("a"), ran.get("b"), ran.get("ab"), ran.get("b2")
		if ab.start.Before(a.end) || ab.start.Before(b.end) {
			t.Error("ab started while a or b ran")
		}
		if b2.start.Before(ab.end) {
			t.Error("b2 started before the older ab finished")
		}
	})
}

func TestDisjointResourcesRunInParallel(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		r := task.NewRunner(d, fast(3))
		// Each handler waits until all three run: they complete only if they
		// overlap.
		var arrived sync.WaitGroup
		arrived.Add(3)
		all := make(chan struct{})
		go func() { arrived.Wait(); close(all) }()
		r.Register("sync", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			arrived.Done()
			select {
			case <-all:
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("the other tasks never ran alongside this one")
			}
		})
		var ids []string
		for _, res := range [][]string{{"repo-1"}, {"repo-2"}, nil} {
			tk, err := s.Enqueue(ctx, task.Spec{Name: "sync", Resources: res})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tk.ID)
		}
		start(t, r)
		for _, id := range ids {
			if got := waitFinished(t, s, id); got.State != task.StateCompleted {
				t.Errorf("task %s: %s %s", id, got.State, got.Error)
			}
		}
	})
}

func TestEnqueueWakesRunner(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		opts := fast(2)
		opts.PollInterval = time.Hour // only a wake-up can start the second task in time
		r := task.NewRunner(d, opts)
		started := make(chan struct{})
		release := make(chan struct{})
		r.Register("first", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			close(started)
			<-release
			return nil
		})
		r.Register("second", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			close(release)
			return nil
		})
		first, err := s.Enqueue(ctx, task.Spec{Name: "first"})
		if err != nil {
			t.Fatal(err)
		}
		start(t, r)
		<-started // the runner is now listening
		second, err := s.Enqueue(ctx, task.Spec{Name: "second"})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{second.ID, first.ID} {
			if got := waitFinished(t, s, id); got.State != task.StateCompleted {
				t.Errorf("%s: %s", id, got.State)
			}
		}
	})
}

func TestCancelRunning(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		r := task.NewRunner(d, fast(2))
		started := make(chan string, 1)
		causes := make(chan error, 1)
		r.Register("long", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			p.Report("sync.downloading", "Downloading", 0)
			started <- tk.ID
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		})
		r.Register("quick", func(ctx context.Context, tk *task.Task, p *task.Progress) error { return nil })
		start(t, r)

		cancelVia := map[string]func(id string) (*task.Task, error){
			// In this process: the handler is told at once.
			"store": func(id string) (*task.Task, error) { return s.Cancel(ctx, id) },
			// Inside a transaction the Store cannot signal the handler, as
			// from another process: the runner finds the request by polling.
			"transaction": func(id string) (tk *task.Task, err error) {
				err = d.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					tk, err = task.NewStore(tx).Cancel(ctx, id)
					return err
				})
				return tk, err
			},
		}
		for _, via := range []string{"store", "transaction"} {
			tk, err := s.Enqueue(ctx, task.Spec{Name: "long", Resources: []string{"repo"}})
			if err != nil {
				t.Fatal(err)
			}
			<-started
			got, err := cancelVia[via](tk.ID)
			if err != nil {
				t.Fatalf("cancel via %s: %v", via, err)
			}
			if !(got.State == task.StateRunning && got.CancelRequested) && got.State != task.StateCanceled {
				t.Errorf("cancel via %s returned %s (cancel requested %v)", via, got.State, got.CancelRequested)
			}
			if cause := <-causes; !errors.Is(cause, task.ErrCanceled) {
				t.Errorf("cancel via %s: handler saw cause %v", via, cause)
			}
			got = waitFinished(t, s, tk.ID)
			if got.State != task.StateCanceled || got.Error != "" {
				t.Errorf("cancel via %s: task ended %s, %q", via, got.State, got.Error)
			}
			if len(got.ProgressReports) != 1 || got.ProgressReports[0].State != task.StateCanceled {
				t.Errorf("cancel via %s: reports %+v, want one canceled", via, got.ProgressReports)
			}
		}

		// A finished task cannot be canceled.
		tk, err := s.Enqueue(ctx, task.Spec{Name: "quick", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		waitFinished(t, s, tk.ID)
		_, err = s.Cancel(ctx, tk.ID)
		wantErr(t, err, errdef.ErrConflict)
		if got, _ := s.Get(ctx, tk.ID); got.State != task.StateCompleted {
			t.Errorf("canceling a completed task changed it to %s", got.State)
		}
	})
}

func TestShutdownFailsRunningTasks(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		opts := fast(2)
		opts.ShutdownTimeout = 300 * time.Millisecond
		r := task.NewRunner(d, opts)
		started := make(chan struct{}, 2)
		causes := make(chan error, 1)
		stubborn := make(chan struct{})
		defer close(stubborn)
		r.Register("polite", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			started <- struct{}{}
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		})
		r.Register("stubborn", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			started <- struct{}{}
			<-stubborn // ignores ctx
			return nil
		})
		stop := start(t, r)
		polite, err := s.Enqueue(ctx, task.Spec{Name: "polite", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		obstinate, err := s.Enqueue(ctx, task.Spec{Name: "stubborn"})
		if err != nil {
			t.Fatal(err)
		}
		<-started
		<-started
		queued, err := s.Enqueue(ctx, task.Spec{Name: "polite", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		stop()

		if cause := <-causes; !errors.Is(cause, task.ErrShutdown) {
			t.Errorf("handler saw cause %v, want ErrShutdown", cause)
		}
		for _, id := range []string{polite.ID, obstinate.ID} {
			got, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != task.StateFailed || !strings.Contains(got.Error, "shut down") {
				t.Errorf("task %s after shutdown: %s, %q", id, got.State, got.Error)
			}
		}
		if got, _ := s.Get(ctx, queued.ID); got.State != task.StateWaiting {
			t.Errorf("queued task after shutdown: %s, want still waiting", got.State)
		}
		var n int
		if err := d.QueryRowContext(ctx, "SELECT count(*) FROM workers").Scan(&n); err != nil || n != 0 {
			t.Errorf("%d workers registered after shutdown (%v), want 0", n, err)
		}
	})
}

// insertWorker records a worker as if some process had registered it.
func insertWorker(t *testing.T, d *bun.DB, host string, pid int, pidNS string, heartbeat time.Time) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := d.ExecContext(context.Background(),
		"INSERT INTO workers (id, hostname, pid, pid_namespace, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
		id, host, pid, pidNS, heartbeat.Add(-time.Minute).UTC(), heartbeat.UTC()); err != nil {
		t.Fatal(err)
	}
	return id
}

// runningTask enqueues a task and marks it claimed by worker.
func runningTask(t *testing.T, d *bun.DB, s *task.Store, worker, resource string) string {
	t.Helper()
	ctx := context.Background()
	tk, err := s.Enqueue(ctx, task.Spec{Name: "sync", Resources: []string{resource}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, "UPDATE tasks SET state = ?, worker_id = ?, started_at = ? WHERE id = ?",
		task.StateRunning, worker, time.Now().UTC(), tk.ID); err != nil {
		t.Fatal(err)
	}
	return tk.ID
}

func TestDeadWorkersTasksFail(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		host, err := os.Hostname()
		if err != nil {
			t.Skip("no hostname:", err)
		}
		pidNS, _ := os.Readlink("/proc/self/ns/pid")
		exited := exec.Command("true")
		if err := exited.Run(); err != nil {
			t.Skip("cannot run a process to get a dead pid:", err)
		}
		deadPID := exited.ProcessState.Pid()

		now := time.Now()
		crashed := insertWorker(t, d, host, deadPID, pidNS, now)                   // this machine, process gone, heartbeat fresh
		silent := insertWorker(t, d, "elsewhere", 4242, "", now.Add(-time.Hour))   // other machine, heartbeat stale
		alive := insertWorker(t, d, "elsewhere", 4243, "", now.Add(time.Second*5)) // other machine, heartbeat fresh
		crashedTask := runningTask(t, d, s, crashed, "repo-1")
		silentTask := runningTask(t, d, s, silent, "repo-2")
		aliveTask := runningTask(t, d, s, alive, "repo-3")
		next, err := s.Enqueue(ctx, task.Spec{Name: "sync", Resources: []string{"repo-1"}})
		if err != nil {
			t.Fatal(err)
		}

		var mu sync.Mutex
		runs := map[string]int{}
		opts := fast(2)
		opts.DeadAfter = time.Minute // only the hour-old heartbeat is stale
		r := task.NewRunner(d, opts)
		r.Register("sync", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			mu.Lock()
			runs[tk.ID]++
			mu.Unlock()
			return nil
		})
		start(t, r)

		for id, worker := range map[string]string{crashedTask: crashed, silentTask: silent} {
			got := waitFinished(t, s, id)
			if got.State != task.StateFailed || !strings.Contains(got.Error, "worker "+worker+" died") {
				t.Errorf("task of dead worker: %s, %q", got.State, got.Error)
			}
		}
		// The dead task's resource is released: the next task on it runs.
		if got := waitFinished(t, s, next.ID); got.State != task.StateCompleted {
			t.Errorf("task queued behind a dead worker's task: %s, %q", got.State, got.Error)
		}
		if got, _ := s.Get(ctx, aliveTask); got.State != task.StateRunning {
			t.Errorf("task of a live worker became %s (%s)", got.State, got.Error)
		}
		mu.Lock()
		if want := map[string]int{next.ID: 1}; !reflect.DeepEqual(runs, want) {
			t.Errorf("handler runs = %v, want only the queued task once (dead workers' tasks are never re-run)", runs)
		}
		mu.Unlock()
		var left []string
		if err := d.NewSelect().Table("workers").Column("id").Where("id <> ?", r.WorkerID()).Scan(ctx, &left); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(left, []string{alive}) {
			t.Errorf("workers left = %q, want only the live one %q", left, alive)
		}
	})
}

func TestWorkerTakenForDeadWhenHeartbeatStops(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		s := migrated(t, d)
		// A worker on another machine, alive when the runner starts, that
		// then stops heartbeating.
		fading := insertWorker(t, d, "elsewhere", 4244, "", time.Now())
		id := runningTask(t, d, s, fading, "repo")
		opts := fast(1)
		opts.DeadAfter = 300 * time.Millisecond
		r := task.NewRunner(d, opts)
		r.Register("sync", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			t.Errorf("task %s of a dead worker was run again", tk.ID)
			return nil
		})
		start(t, r)
		got := waitFinished(t, s, id)
		if got.State != task.StateFailed || !strings.Contains(got.Error, "worker "+fading+" died") {
			t.Errorf("task of a worker that stopped heartbeating: %s, %q", got.State, got.Error)
		}
	})
}

func TestTwoRunnersRunEachTaskOnce(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		other := reopen(t, d) // a second process's connection pool

		var mu sync.Mutex
		runs := map[string]int{}
		byWorker := map[string]int{}
		var ran spans
		handler := func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			mu.Lock()
			runs[tk.ID]++
			byWorker[tk.WorkerID]++
			mu.Unlock()
			ran.record(tk.ID, func() { time.Sleep(5 * time.Millisecond) })
			return nil
		}
		var ids []string
		resources := map[string][]string{} // resource -> task IDs in creation order
		enqueue := func(i int) {
			var res []string
			if i%5 != 4 {
				res = []string{fmt.Sprintf("repo-%d", i%3)}
			}
			tk, err := s.Enqueue(ctx, task.Spec{Name: "sync", Resources: res})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tk.ID)
			for _, r := range res {
				resources[r] = append(resources[r], tk.ID)
			}
		}
		for i := range 10 {
			enqueue(i)
		}
		for _, db := range []*bun.DB{d, other} {
			r := task.NewRunner(db, fast(3))
			r.Register("sync", handler)
			start(t, r)
		}
		for i := 10; i < 20; i++ {
			enqueue(i)
		}
		for _, id := range ids {
			if got := waitFinished(t, s, id); got.State != task.StateCompleted {
				t.Errorf("task %s: %s %q", id, got.State, got.Error)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if runs[id] != 1 {
				t.Errorf("task %s ran %d times", id, runs[id])
			}
		}
		if len(runs) != len(ids) {
			t.Errorf("%d distinct tasks ran, want %d", len(runs), len(ids))
		}
		for res, list := range resources {
			for i := 1; i < len(list); i++ {
				if prev, cur := ran.get(list[i-1]), ran.get(list[i]); cur.start.Before(prev.end) {
					t.Errorf("%s: task %d started before task %d ended", res, i, i-1)
				}
			}
		}
		t.Logf("tasks per worker: %v", byWorker)
	})
}

func TestLateFinisherDoesNotOverwriteReapedTask(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		opts := fast(1)
		// Check running tasks only every second, so the handler below
		// usually returns before the runner notices the task was taken
		// from it, and the guarded final update is what protects it.
		opts.PollInterval = time.Hour
		r := task.NewRunner(d, opts)
		started := make(chan struct{})
		release := make(chan struct{})
		r.Register("slow", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			close(started)
			<-release // ignores ctx, as a handler stuck in a syscall would
			p.Created("/should/not/appear/")
			return nil
		})
		r.Register("next", func(ctx context.Context, tk *task.Task, p *task.Progress) error { return nil })
		start(t, r)
		slow, err := s.Enqueue(ctx, task.Spec{Name: "slow", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		<-started
		// Another process took this worker for dead (a long pause, say): it
		// failed the task and removed the worker's row.
		if err := d.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "UPDATE tasks SET state = ?, error = ?, finished_at = ? WHERE id = ?",
				task.StateFailed, "worker died (test)", time.Now().UTC(), slow.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM task_reservations WHERE task_id = ?", slow.ID); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "DELETE FROM workers WHERE id = ?", r.WorkerID())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// The worker notices it was declared dead and registers again.
		waitFor(t, "the worker to register again", func() bool {
			var n int
			if err := d.QueryRowContext(ctx, "SELECT count(*) FROM workers WHERE id = ?", r.WorkerID()).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		})
		close(release)
		// With one worker slot, "next" starts only after the slow handler's
		// outcome was dealt with.
		next, err := s.Enqueue(ctx, task.Spec{Name: "next", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := waitFinished(t, s, next.ID); got.State != task.StateCompleted {
			t.Fatalf("next task: %s %q", got.State, got.Error)
		}
		got, err := s.Get(ctx, slow.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != task.StateFailed || got.Error != "worker died (test)" || len(got.CreatedResources) != 0 {
			t.Errorf("reaped task was overwritten by its late handler: %s, %q, %q", got.State, got.Error, got.CreatedResources)
		}
	})
}
