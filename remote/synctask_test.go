package remote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// TestSyncTask: a sync enqueued with EnqueueSync and run by a task.Runner
// with SyncHandler holds the repository and the remote, completes with
// the stages' reports and the version it created; a resync creates
// nothing; a sync of a remote that is gone fails.
func TestSyncTask(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		if err := task.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		host, url, _ := upstream(t)
		pushSample(t, host, "team/app")
		remotes := remote.NewStore(db)
		rm := remote.New("up", url, "team/app")
		if err := remotes.Create(ctx, rm); err != nil {
			t.Fatal(err)
		}
		runner := task.NewRunner(db, task.Options{PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		runner.Register(remote.SyncTask, remote.SyncHandler(f.syncer, remotes, func(v *repository.Version) string {
			return fmt.Sprintf("%s/versions/%d", v.RepositoryID, v.Number)
		}))
		rctx, stop := context.WithCancel(ctx)
		stopped := make(chan error)
		go func() { stopped <- runner.Run(rctx) }()
		defer func() { stop(); <-stopped }()
		tasks := task.NewStore(db)
		run := func(args remote.SyncArgs) *task.Task {
			t.Helper()
			tk, err := remote.EnqueueSync(ctx, tasks, args, "repository "+args.Repository, "remote "+args.Remote)
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(30 * time.Second); !tk.State.Finished(); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("task %s still %s", tk.ID, tk.State)
				}
				if tk, err = tasks.Get(ctx, tk.ID); err != nil {
					t.Fatal(err)
				}
			}
			return tk
		}

		args := remote.SyncArgs{Remote: rm.ID, Repository: f.repoID}
		tk := run(args)
		if tk.State != task.StateCompleted || !slices.Equal(tk.CreatedResources, []string{f.repoID + "/versions/1"}) {
			t.Fatalf("sync task %s (%s), created %v", tk.State, tk.Error, tk.CreatedResources)
		}
		if tk.Name != "sync" || !slices.Equal(tk.Resources, []string{"repository " + f.repoID, "remote " + rm.ID}) {
			t.Errorf("task %q holds %v", tk.Name, tk.Resources)
		}
		// Rows enqueued before SyncArgs existed have these field names.
		var stored map[string]any
		if err := json.Unmarshal(tk.Args, &stored); err != nil || stored["remote"] != rm.ID || stored["repository"] != f.repoID || stored["mirror"] != false {
			t.Errorf("task args %s", tk.Args)
		}
		if len(tk.ProgressReports) != 4 {
			t.Errorf("reports %+v, want one per stage", tk.ProgressReports)
		}
		for _, rep := range tk.ProgressReports {
			if rep.State != task.StateCompleted {
				t.Errorf("report %+v, want completed", rep)
			}
		}

		args.Mirror = true
		if tk := run(args); tk.State != task.StateCompleted || len(tk.CreatedResources) != 0 {
			t.Errorf("resync task %s (%s), created %v; want completed, nothing created", tk.State, tk.Error, tk.CreatedResources)
		}
		if err := remotes.Delete(ctx, rm.ID); err != nil {
			t.Fatal(err)
		}
		if tk := run(args); tk.State != task.StateFailed || !strings.Contains(tk.Error, "not found") {
			t.Errorf("sync of a deleted remote: %s, %q", tk.State, tk.Error)
		}
		if _, err := remote.EnqueueSync(ctx, tasks, remote.SyncArgs{Remote: rm.ID}, "a", "b"); err == nil {
			t.Error("a sync without a repository was enqueued")
		}
	})
}
