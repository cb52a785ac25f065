package task_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/task"
)

// migrated migrates d and returns a Store over it.
func migrated(t *testing.T, d *bun.DB) *task.Store {
	t.Helper()
	if err := task.Migrate(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return task.NewStore(d)
}

// fast returns Options with short intervals so tests finish quickly.
func fast(workers int) task.Options {
	return task.Options{
		Workers:         workers,
		PollInterval:    20 * time.Millisecond,
		Heartbeat:       50 * time.Millisecond,
		DeadAfter:       time.Second,
		ShutdownTimeout: 5 * time.Second,
		Logger:          logger(),
	}
}

func logger() *slog.Logger {
	if os.Getenv("TASK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs r until the test ends (or the returned stop is called) and
// checks that Run returned nil.
func start(t *testing.T, r *task.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after its context was canceled")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFinished waits for task id to reach a final state and returns it.
func waitFinished(t *testing.T, s *task.Store, id string) *task.Task {
	t.Helper()
	var got *task.Task
	waitFor(t, "task "+id+" to finish", func() bool {
		var err error
		got, err = s.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return got.State.Finished()
	})
	return got
}

// reopen opens a second, independent handle on d's database, as another
// process would.
func reopen(t *testing.T, d *bun.DB) *bun.DB {
	t.Helper()
	ctx := context.Background()
	var dsn string
	switch d.Dialect().Name() {
	case dialect.SQLite:
		var seq int
		var name string
		if err := d.QueryRowContext(ctx, "PRAGMA database_list").Scan(&seq, &name, &dsn); err != nil {
			t.Fatal(err)
		}
	case dialect.PG:
		var schema string
		if err := d.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(os.Getenv(dbtest.EnvPostgres))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		dsn = u.String()
	default:
		t.Fatalf("unknown dialect %s", d.Dialect().Name())
	}
	d2, err := mooringdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	return d2
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
}
