package mooring

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// The content lifecycle as tasks: repository actions (tag, untag, add,
// remove, copy_tags, copy_manifests, modify), deleting repositories and
// versions, and orphan cleanup. Each is an SDK call of its own
// (repository.Store.ApplyAction, DeleteRepository, DeleteVersion,
// Mooring.CleanupOrphans); the Enqueue functions check what they can at
// once, so that bad input is refused before a task exists, and enqueue a
// task that a Runner made by NewRunner runs.

// Task names. A repository action's task is named after its kind
// (repository.ActionTag, …).
const (
	DeleteRepositoryTask = "delete_repository"
	DeleteVersionTask    = "delete_repository_version"
	OrphanCleanupTask    = "orphan_cleanup"
)

// actionTasks are the names of the repository action tasks.
var actionTasks = []string{repository.ActionTag, repository.ActionUntag, repository.ActionAdd, repository.ActionRemove,
	repository.ActionCopyTags, repository.ActionCopyManifests, repository.ActionModify}

// orphanCleanupResource is the resource every orphan cleanup holds, so
// that cleanups run one at a time.
const orphanCleanupResource = "orphan-cleanup"

// ActionArgs are the arguments of a repository action task.
type ActionArgs struct {
	// Repository is the ID of the repository changed.
	Repository string `json:"repository"`
	// Action is the action.
	Action repository.Action `json:"action"`
}

// EnqueueAction checks action against repository repoID
// (repository.Store.CheckAction: its *errdef.FieldError name the REST
// API's fields) and enqueues the task that applies it, named after its
// kind. The task holds resource repoKey, which names the repository (the
// server's is its href), so that changes to one repository, syncs
// included, run one at a time in the order they were asked for. When it
// makes a version, created(v) is recorded on the task (see NewRunner).
func (m *Mooring) EnqueueAction(ctx context.Context, repoID string, action repository.Action, repoKey string) (*task.Task, error) {
	if err := m.Repositories.CheckAction(ctx, repoID, action); err != nil {
		return nil, err
	}
	return m.Tasks.Enqueue(ctx, task.Spec{Name: action.Kind, Args: ActionArgs{Repository: repoID, Action: action}, Resources: []string{repoKey}})
}

// DeleteArgs are the arguments of a DeleteRepositoryTask or
// DeleteVersionTask.
type DeleteArgs struct {
	Repository string `json:"repository"`
	// Version is the version deleted; nil for the whole repository.
	Version *int `json:"version,omitempty"`
}

// EnqueueDeleteRepository enqueues the task that deletes repository
// repoID, holding resource repoKey. A repository that does not exist is
// errdef.ErrNotFound, one a distribution serves errdef.ErrConflict naming
// the distribution, at once; the task checks again as it deletes.
func (m *Mooring) EnqueueDeleteRepository(ctx context.Context, repoID, repoKey string) (*task.Task, error) {
	if err := m.Repositories.CheckDeleteRepository(ctx, repoID); err != nil {
		return nil, err
	}
	return m.Tasks.Enqueue(ctx, task.Spec{Name: DeleteRepositoryTask, Args: DeleteArgs{Repository: repoID}, Resources: []string{repoKey}})
}

// EnqueueDeleteVersion enqueues the task that deletes version n of
// repository repoID, holding resource repoKey; errors as
// EnqueueDeleteRepository's, and errdef.ErrConflict for a repository's
// only version.
func (m *Mooring) EnqueueDeleteVersion(ctx context.Context, repoID string, n int, repoKey string) (*task.Task, error) {
	if err := m.Repositories.CheckDeleteVersion(ctx, repoID, n); err != nil {
		return nil, err
	}
	return m.Tasks.Enqueue(ctx, task.Spec{Name: DeleteVersionTask, Args: DeleteArgs{Repository: repoID, Version: &n}, Resources: []string{repoKey}})
}

// DefaultOrphanProtection is how long orphan cleanup leaves what was just
// stored, when CleanupOptions.ProtectionTime is zero: Pulp's default
// orphan_protection_time, 1440 minutes.
const DefaultOrphanProtection = 24 * time.Hour

// NoProtection, as CleanupOptions.ProtectionTime, protects nothing: every
// orphan goes, however new.
const NoProtection time.Duration = -1

// CleanupOptions tune an orphan cleanup.
type CleanupOptions struct {
	// ProtectionTime: content units and blobs stored less than this long
	// ago are kept even when nothing holds them. Default
	// DefaultOrphanProtection; NoProtection (any negative value) keeps
	// none.
	ProtectionTime time.Duration
	// Progress receives the reports CodeCleanupUnits, CodeCleanupBlobs and
	// CodeCleanupBytes; nil records none.
	Progress *task.Progress
}

// Progress report codes of an orphan cleanup: each report's done count is
// what it deleted so far.
const (
	CodeCleanupUnits = "clean-up.content"
	CodeCleanupBlobs = "clean-up.blobs"
	CodeCleanupBytes = "clean-up.bytes"
)

// CleanupResult is what an orphan cleanup deleted.
type CleanupResult struct {
	// Units counts the content units deleted, by type.
	Units map[content.Type]int `json:"units"`
	// UnitsDeleted is their total.
	UnitsDeleted int `json:"units_deleted"`
	// StagedDropped counts staged push blobs given up (see
	// push.Service.DropStaged).
	StagedDropped int `json:"staged_dropped"`
	// BlobsDeleted and BytesFreed are the blobs deleted from storage and
	// the bytes they held.
	BlobsDeleted int   `json:"blobs_deleted"`
	BytesFreed   int64 `json:"bytes_freed"`
}

// CleanupOrphans deletes what nothing holds any more and reclaims its
// storage, Pulp's orphan cleanup: staged push blobs abandoned for longer
// than the protection time and the upload timeout
// (push.Service.DropStaged), then the content units no repository version
// holds (repository.Store.DeleteOrphans), then the blobs in storage that no
// unit, staged blob or writer keeps (repository.Store.SweepBlobs), each
// only when stored before the protection time.
//
// It runs online, beside pushes, syncs and pulls in any process sharing
// the database and storage: see repository.Store.LeaseBlobs for why no
// blob a writer relies on is deleted.
func (m *Mooring) CleanupOrphans(ctx context.Context, opts CleanupOptions) (*CleanupResult, error) {
	protect := opts.ProtectionTime
	switch {
	case protect == 0:
		protect = DefaultOrphanProtection
	case protect < 0:
		protect = 0
	}
	cutoff := time.Now().UTC().Add(-protect)
	res := &CleanupResult{Units: map[content.Type]int{}}
	units := opts.Progress.Report(CodeCleanupUnits, "Clean up orphan content units", 0)
	blobs := opts.Progress.Report(CodeCleanupBlobs, "Clean up orphan blobs", 0)
	bytes := opts.Progress.Report(CodeCleanupBytes, "Bytes freed", 0)
	var err error
	if res.StagedDropped, err = m.Push.DropStaged(ctx, protect); err != nil {
		return res, err
	}
	reported := 0
	res.Units, err = m.Repositories.DeleteOrphans(ctx, cutoff, func(n int) {
		units.Add(int64(n - reported))
		reported = n
	})
	for _, n := range res.Units {
		res.UnitsDeleted += n
	}
	if err != nil {
		return res, err
	}
	units.Complete()
	var last repository.SweepResult
	swept, err := m.Repositories.SweepBlobs(ctx, m.Blobs, cutoff, func(s repository.SweepResult) {
		blobs.Add(int64(s.Blobs - last.Blobs))
		bytes.Add(s.Bytes - last.Bytes)
		last = s
	})
	res.BlobsDeleted, res.BytesFreed = swept.Blobs, swept.Bytes
	if err != nil {
		return res, err
	}
	blobs.Complete()
	bytes.Complete()
	m.log.Info("orphan cleanup", "units", res.UnitsDeleted, "staged", res.StagedDropped, "blobs", res.BlobsDeleted, "bytes", res.BytesFreed)
	return res, nil
}

// CleanupArgs are the arguments of an OrphanCleanupTask.
type CleanupArgs struct {
	// ProtectionTime is CleanupOptions.ProtectionTime.
	ProtectionTime time.Duration `json:"protection_time"`
}

// EnqueueOrphanCleanup enqueues an orphan cleanup with the given
// protection time (see CleanupOptions). Cleanups run one at a time.
func (m *Mooring) EnqueueOrphanCleanup(ctx context.Context, protect time.Duration) (*task.Task, error) {
	return m.Tasks.Enqueue(ctx, task.Spec{Name: OrphanCleanupTask, Args: CleanupArgs{ProtectionTime: protect}, Resources: []string{orphanCleanupResource}})
}

// RunOrphanCleanups enqueues an orphan cleanup with the given protection
// time every interval until ctx is done, the first one interval after it
// starts; an interval in which a cleanup is still waiting or running, from
// this process or another, is skipped. Errors are logged.
func (m *Mooring) RunOrphanCleanups(ctx context.Context, every, protect time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.scheduleCleanup(ctx, protect); err != nil && ctx.Err() == nil {
			m.log.Warn("scheduling orphan cleanup", "err", err)
		}
	}
}

func (m *Mooring) scheduleCleanup(ctx context.Context, protect time.Duration) error {
	for _, st := range []task.State{task.StateWaiting, task.StateRunning} {
		_, n, err := m.Tasks.List(ctx, task.Filter{Name: OrphanCleanupTask, State: st, Limit: 1})
		if err != nil || n > 0 {
			return err
		}
	}
	_, err := m.EnqueueOrphanCleanup(ctx, protect)
	return err
}

// registerLifecycle registers the lifecycle's task handlers on r; created
// names a new version as recorded on its task.
func (m *Mooring) registerLifecycle(r *task.Runner, created func(*repository.Version) string) {
	for _, name := range actionTasks {
		r.Register(name, m.actionHandler(created))
	}
	r.Register(DeleteRepositoryTask, m.deleteHandler)
	r.Register(DeleteVersionTask, m.deleteHandler)
	r.Register(OrphanCleanupTask, m.cleanupHandler)
}

func decodeArgs(t *task.Task, v any) error {
	if err := json.Unmarshal(t.Args, v); err != nil {
		return errdef.New(errdef.ErrInvalid, "decode %s arguments: %v", t.Name, err)
	}
	return nil
}

func (m *Mooring) actionHandler(created func(*repository.Version) string) task.Handler {
	return func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args ActionArgs
		if err := decodeArgs(t, &args); err != nil {
			return err
		}
		v, err := m.Repositories.ApplyAction(ctx, args.Repository, args.Action)
		if err != nil || v == nil {
			return err
		}
		m.Registry.ForgetRepository(context.WithoutCancel(ctx), args.Repository)
		p.Created(created(v))
		return nil
	}
}

func (m *Mooring) deleteHandler(ctx context.Context, t *task.Task, _ *task.Progress) error {
	var args DeleteArgs
	if err := decodeArgs(t, &args); err != nil {
		return err
	}
	if args.Version == nil {
		return m.Distributions.DeleteRepository(ctx, args.Repository)
	}
	err := m.Distributions.DeleteVersion(ctx, args.Repository, *args.Version)
	if err == nil {
		m.Registry.ForgetRepository(context.WithoutCancel(ctx), args.Repository)
	}
	return err
}

func (m *Mooring) cleanupHandler(ctx context.Context, t *task.Task, p *task.Progress) error {
	var args CleanupArgs
	if err := decodeArgs(t, &args); err != nil {
		return err
	}
	_, err := m.CleanupOrphans(ctx, CleanupOptions{ProtectionTime: args.ProtectionTime, Progress: p})
	if errors.Is(err, context.Canceled) {
		return context.Cause(ctx)
	}
	return err
}
