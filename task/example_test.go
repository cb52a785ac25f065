package task_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// A sync task enqueued through a Store and run by a Runner in the same
// process, reporting progress and the repository version it created.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mooring-task-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Any bun database opens; repository.Open opens SQLite or PostgreSQL.
	db, err := repository.Open(ctx, filepath.Join(dir, "mooring.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := task.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}

	runner := task.NewRunner(db, task.Options{Logger: slog.New(slog.DiscardHandler)})
	runner.Register("sync", func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args struct {
			Repository string `json:"repository"`
		}
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return err
		}
		tags := p.Report("sync.downloading.tags", "Downloading tags", 3)
		for range 3 {
			tags.Increment()
		}
		tags.Complete()
		p.Created("/pulp/api/v3/repositories/" + args.Repository + "/versions/1/")
		return nil
	})
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error)
	go func() { stopped <- runner.Run(runCtx) }()

	store := task.NewStore(db)
	t, err := store.Enqueue(ctx, task.Spec{
		Name:      "sync",
		Args:      map[string]string{"repository": "busybox"},
		Resources: []string{"busybox"}, // one sync of this repository at a time
	})
	if err != nil {
		log.Fatal(err)
	}
	for !t.State.Finished() {
		time.Sleep(20 * time.Millisecond)
		if t, err = store.Get(ctx, t.ID); err != nil {
			log.Fatal(err)
		}
	}
	stop()
	if err := <-stopped; err != nil {
		log.Fatal(err)
	}

	fmt.Println(t.Name, t.State)
	for _, r := range t.ProgressReports {
		fmt.Printf("%s: %d/%d %s\n", r.Message, r.Done, r.Total, r.State)
	}
	fmt.Println(t.CreatedResources)
	// Output:
	// sync completed
	// Downloading tags: 3/3 completed
	// [/pulp/api/v3/repositories/busybox/versions/1/]
}
