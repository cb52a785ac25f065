package mooring

import (
	"context"
	"errors"
	"slices"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// ReclaimSpace gives back, now, the stored bytes of every blob of the
// repositories repoIDs that their remotes can fetch again, but those the
// versions keep hold (see repository.Store.ReclaimSpace): versions do not
// change, and the registry fetches the bytes on demand when next pulled.
// EnqueueReclaim does it as a durable task.
func (m *Mooring) ReclaimSpace(ctx context.Context, repoIDs []string, keep []repository.VersionRef) (repository.ReclaimResult, error) {
	return m.Repositories.ReclaimSpace(ctx, m.Blobs, repoIDs, keep)
}

// EnqueueReclaim checks that every repository of args exists and every
// version to keep too, and enqueues a remote.ReclaimTask, which the
// runners of NewRunner run. key names a repository as the task's
// resources show it (the REST API's href; nil: its id). A repository or
// version that does not exist is an *errdef.FieldError on
// "repo_hrefs" or "repo_versions_keeplist".
func (m *Mooring) EnqueueReclaim(ctx context.Context, args remote.ReclaimArgs, key func(repoID string) string) (*task.Task, error) {
	if key == nil {
		key = func(id string) string { return id }
	}
	if len(args.Repositories) == 0 {
		return nil, errdef.Field("repo_hrefs", "This list may not be empty.")
	}
	slices.Sort(args.Repositories)
	args.Repositories = slices.Compact(args.Repositories)
	keys := make([]string, len(args.Repositories))
	for i, id := range args.Repositories {
		if _, err := m.Repositories.Repository(ctx, id); err != nil {
			return nil, missingField(err, "repo_hrefs")
		}
		keys[i] = key(id)
	}
	for _, v := range args.Keep {
		if _, err := m.Repositories.Version(ctx, v.RepositoryID, v.Number); err != nil {
			return nil, missingField(err, "repo_versions_keeplist")
		}
	}
	return remote.EnqueueReclaim(ctx, m.Tasks, args, keys)
}

// missingField turns a not-found error into a field error, in the REST
// API's words.
func missingField(err error, field string) error {
	if errors.Is(err, errdef.ErrNotFound) {
		return errdef.Field(field, "Invalid hyperlink - Object does not exist.")
	}
	return err
}
