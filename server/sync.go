package server

import (
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// NewRunner returns the front door's task Runner (the sync task
// registered), recording a version a sync creates by its href.
func (s *Server) NewRunner(opts task.Options) *task.Runner {
	return s.m.NewRunner(opts, func(v *repository.Version) string { return versionHref(v.RepositoryID, v.Number) })
}
