package remote

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// SyncTask is the name of the task that syncs a remote into a repository
// (Pulp's "sync"); its arguments are a SyncArgs.
const SyncTask = "sync"

// SyncArgs are the arguments of a SyncTask, stored with the task as JSON.
type SyncArgs struct {
	// Remote is the ID of the stored remote to sync from.
	Remote string `json:"remote"`
	// Repository is the ID of the repository to sync into.
	Repository string `json:"repository"`
	// Mirror is SyncOptions.Mirror.
	Mirror bool `json:"mirror"`
	// SignedOnly is SyncOptions.SignedOnly.
	SignedOnly bool `json:"signed_only,omitempty"`
	// RetryPatience is SyncOptions.RetryPatience in seconds; 0 is the
	// default.
	RetryPatience int `json:"retry_patience,omitempty"`
}

// EnqueueSync enqueues a SyncTask of args on tasks and returns it. The task
// holds two resources, repoKey and remoteKey, naming the repository and
// the remote (the server's are their hrefs, which its task view shows):
// syncs into one repository, or from one remote, run one at a time in the
// order they were enqueued. Args without a remote or a repository, and
// empty keys, are errdef.ErrInvalid.
func EnqueueSync(ctx context.Context, tasks *task.Store, args SyncArgs, repoKey, remoteKey string) (*task.Task, error) {
	if args.Remote == "" || args.Repository == "" {
		return nil, errdef.New(errdef.ErrInvalid, "a sync needs a remote and a repository")
	}
	return tasks.Enqueue(ctx, task.Spec{Name: SyncTask, Args: args, Resources: []string{repoKey, remoteKey}})
}

// SyncHandler returns the handler that runs SyncTask tasks, to register
// on a task.Runner under SyncTask. It reads the remote of the task's
// SyncArgs from remotes and syncs it with s, recording progress on the
// task. When the sync creates a version v, created(v), such as the
// version's href, is recorded as a resource the task created.
func SyncHandler(s *Syncer, remotes *Store, created func(v *repository.Version) string) task.Handler {
	return func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args SyncArgs
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return errdef.New(errdef.ErrInvalid, "decode sync arguments: %v", err)
		}
		rm, err := remotes.Get(ctx, args.Remote)
		if err != nil {
			return err
		}
		res, err := s.Sync(ctx, rm, args.Repository, SyncOptions{Mirror: args.Mirror, SignedOnly: args.SignedOnly, Progress: p,
			RetryPatience: time.Duration(args.RetryPatience) * time.Second})
		if err != nil {
			return err
		}
		if res.Version != nil {
			p.Created(created(res.Version))
		}
		return nil
	}
}
