package server

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/remote/ocilayout"
)

// layoutPath checks a path an export or import names against the
// directories the server may use.
func (s *Server) layoutPath(p string) (string, error) {
	if len(s.opts.LayoutPaths) == 0 {
		return "", errdef.Field("path", "This server reads and writes OCI layouts only inside directories it is started with (-allowed-paths, MOORING_ALLOWED_PATHS), and it was started with none.")
	}
	return ocilayout.CheckPath(p, s.opts.LayoutPaths)
}

// exportRepository enqueues an export of a repository version (the latest
// unless repository_version names one) to an OCI image layout on the
// server: 202 and the task.
func (s *Server) exportRepository(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	path := b.str("path", true, false)
	version := b.href("repository_version", false, false, parseVersionHref)
	tags := b.strList("tags")
	if err := b.done(); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	repo, err := s.repos.Repository(ctx, id)
	if err != nil {
		return err
	}
	args := ocilayout.ExportArgs{Repository: id, Version: repo.LatestVersion}
	if version != nil {
		vid, n := splitVersionKey(*version)
		if vid != id {
			return fieldError{"repository_version": {"Give a version of this repository."}}
		}
		if _, err := s.repos.Version(ctx, id, n); err != nil {
			return objectMissing(err, "repository_version")
		}
		args.Version = n
	}
	if tags != nil {
		args.Tags = *tags
	}
	if args.Path, err = s.layoutPath(*path); err != nil {
		return err
	}
	t, err := ocilayout.EnqueueExport(ctx, s.tasks, args, repoHref(id))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}

// importRepository enqueues an import of an OCI image layout on the server
// into a new version of a repository: 202 and the task.
func (s *Server) importRepository(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	path := b.str("path", true, false)
	if err := b.done(); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	if _, err := s.repos.Repository(ctx, id); err != nil {
		return err
	}
	args := ocilayout.ImportArgs{Repository: id}
	if args.Path, err = s.layoutPath(*path); err != nil {
		return err
	}
	t, err := ocilayout.EnqueueImport(ctx, s.tasks, args, repoHref(id))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}
