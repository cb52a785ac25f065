package server

import (
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// RegisterTasks registers the server's task handlers on a Runner:
// remote.SyncTask runs remote.Syncer, and a version it creates is recorded
// on the task by its href.
func (s *Server) RegisterTasks(r *task.Runner) {
	syncer := &remote.Syncer{Repos: s.repos, Blobs: s.blobs, Logger: s.log}
	r.Register(remote.SyncTask, remote.SyncHandler(syncer, s.remotes, func(v *repository.Version) string {
		return versionHref(v.RepositoryID, v.Number)
	}))
}
