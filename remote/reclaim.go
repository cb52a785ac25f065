package remote

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// ReclaimTask is the name of the task that gives back the stored bytes of
// blobs that remotes can fetch again (Pulp's reclaim_space); its arguments
// are a ReclaimArgs.
const ReclaimTask = "reclaim_space"

// ReclaimArgs are the arguments of a ReclaimTask, stored with the task as
// JSON.
type ReclaimArgs struct {
	// Repositories are the ids of the repositories whose blobs are
	// reclaimed.
	Repositories []string `json:"repositories"`
	// Keep are versions whose blobs keep their bytes (Pulp's
	// repo_versions_keeplist).
	Keep []repository.VersionRef `json:"keep,omitempty"`
}

// CodeReclaim is the progress report code of a ReclaimTask.
const CodeReclaim = "reclaim.space"

// EnqueueReclaim enqueues a ReclaimTask of args on tasks and returns it.
// The task holds keys, one per repository (the server's are their hrefs):
// it waits for syncs into them, and they for it. Args without a
// repository are errdef.ErrInvalid.
func EnqueueReclaim(ctx context.Context, tasks *task.Store, args ReclaimArgs, keys []string) (*task.Task, error) {
	if len(args.Repositories) == 0 {
		return nil, errdef.New(errdef.ErrInvalid, "reclaiming space needs at least one repository")
	}
	return tasks.Enqueue(ctx, task.Spec{Name: ReclaimTask, Args: args, Resources: keys})
}

// ReclaimHandler returns the handler that runs ReclaimTask tasks, to
// register on a task.Runner under ReclaimTask: it calls
// repos.ReclaimSpace, deleting bytes from blobs, and reports how many
// blobs it gave back (done) and their bytes (in the message).
func ReclaimHandler(repos *repository.Store, blobs storage.Deleter) task.Handler {
	return func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args ReclaimArgs
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return errdef.New(errdef.ErrInvalid, "decode reclaim arguments: %v", err)
		}
		rep := p.Report(CodeReclaim, "Reclaiming disk space", 0)
		res, err := repos.ReclaimSpace(ctx, blobs, args.Repositories, args.Keep)
		rep.Add(int64(res.Blobs))
		if err != nil {
			return err
		}
		p.Report(CodeReclaim, fmt.Sprintf("Reclaimed %d bytes of disk space", res.Bytes), int64(res.Blobs))
		rep.Complete()
		return nil
	}
}
