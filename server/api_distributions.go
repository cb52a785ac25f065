package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/repository"
)

type distributionJSON struct {
	Href              string  `json:"_href"`
	Created           string  `json:"_created"`
	Name              string  `json:"name"`
	BasePath          string  `json:"base_path"`
	Repository        *string `json:"repository"`
	RepositoryVersion *string `json:"repository_version"`
	RegistryPath      string  `json:"registry_path"`
	Private           bool    `json:"private"`
}

func (s *Server) distributionView(ctx context.Context, d *distribution.Distribution) (distributionJSON, error) {
	out := distributionJSON{
		Href:         distributionHref(d.ID),
		Created:      ts(d.CreatedAt),
		Name:         d.Name,
		BasePath:     d.BasePath,
		RegistryPath: s.origin + "/" + d.BasePath,
		Private:      d.Private,
	}
	if d.RepositoryID != nil {
		h := repoHref(*d.RepositoryID)
		out.Repository = &h
	}
	if d.RepositoryVersionID != nil {
		v, err := s.repos.VersionByID(ctx, *d.RepositoryVersionID)
		if err != nil {
			return out, err
		}
		h := versionHref(v.RepositoryID, v.Number)
		out.RepositoryVersion = &h
	}
	return out, nil
}

func (s *Server) listDistributions(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := distribution.Filter{Name: q.str("name"), BasePath: q.str("base_path"), Page: repository.Page{Limit: limit, Offset: offset}}
	if err := q.done(); err != nil {
		return err
	}
	var err error
	if _, f.IDs, err = s.visible(r); err != nil {
		return err
	}
	ds, n, err := s.dists.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]distributionJSON, len(ds))
	for i := range ds {
		if out[i], err = s.distributionView(r.Context(), &ds[i]); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

// readDistribution applies a request body to d: all fields for POST and
// PUT, those sent for PATCH.
func (s *Server) readDistribution(ctx context.Context, r *http.Request, d *distribution.Distribution) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	name := b.str("name", true, false)
	basePath := b.str("base_path", true, false)
	repo := b.href("repository", false, true, parseRepoHref)
	version := b.href("repository_version", false, true, parseVersionHref)
	private := b.boolean("private")
	if err := b.done(); err != nil {
		return err
	}
	if private != nil {
		d.Private = *private
	} else if r.Method != http.MethodPatch {
		d.Private = false
	}
	if name != nil {
		d.Name = *name
	}
	if basePath != nil {
		d.BasePath = *basePath
	}
	if r.Method != http.MethodPatch {
		d.RepositoryID, d.RepositoryVersionID = nil, nil
	}
	if repo != nil {
		d.RepositoryID = nil
		if *repo != "" {
			d.RepositoryID = repo
		}
	}
	if version != nil {
		d.RepositoryVersionID = nil
		if *version != "" {
			id, n := splitVersionKey(*version)
			v, err := s.repos.Version(ctx, id, n)
			if errors.Is(err, errdef.ErrNotFound) {
				return fieldError{"repository_version": {"Invalid hyperlink - Object does not exist."}}
			}
			if err != nil {
				return err
			}
			d.RepositoryVersionID = &v.ID
		}
	}
	return nil
}

func (s *Server) createDistribution(w http.ResponseWriter, r *http.Request) error {
	d := new(distribution.Distribution)
	if err := s.readDistribution(r.Context(), r, d); err != nil {
		return err
	}
	user := s.scopedUser(r)
	if err := s.mayServe(r.Context(), user, d); err != nil {
		return err
	}
	if err := s.dists.Create(r.Context(), d); err != nil {
		return err
	}
	if user != "" {
		// A creator owns what it creates.
		if err := s.users.AddRole(r.Context(), mooring.Role{Username: user, Role: mooring.RoleOwner, Kind: mooring.KindDistribution, Object: d.ID}); err != nil {
			return err
		}
	}
	return s.writeDistribution(w, r, http.StatusCreated, d)
}

func (s *Server) writeDistribution(w http.ResponseWriter, r *http.Request, status int, d *distribution.Distribution) error {
	out, err := s.distributionView(r.Context(), d)
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) getDistribution(w http.ResponseWriter, r *http.Request) error {
	d, err := s.dists.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return s.writeDistribution(w, r, http.StatusOK, d)
}

func (s *Server) updateDistribution(w http.ResponseWriter, r *http.Request) error {
	d, err := s.dists.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if err := s.readDistribution(r.Context(), r, d); err != nil {
		return err
	}
	if err := s.mayServe(r.Context(), s.scopedUser(r), d); err != nil {
		return err
	}
	if err := s.dists.Update(r.Context(), d); err != nil {
		return err
	}
	return s.writeDistribution(w, r, http.StatusOK, d)
}

func (s *Server) deleteDistribution(w http.ResponseWriter, r *http.Request) error {
	if err := s.dists.Delete(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// mayServe checks that user (empty: an administrator) may create d: it
// needs to create under d's namespace and to change what d serves.
func (s *Server) mayServe(ctx context.Context, user string, d *distribution.Distribution) error {
	if user == "" {
		return nil
	}
	if ok, err := s.m.Permissions().CreateDistribution(ctx, user, d.BasePath); err != nil || !ok {
		return forbiddenOr(err)
	}
	repoID := ""
	if d.RepositoryID != nil {
		repoID = *d.RepositoryID
	} else if d.RepositoryVersionID != nil {
		v, err := s.repos.VersionByID(ctx, *d.RepositoryVersionID)
		if err != nil {
			return err
		}
		repoID = v.RepositoryID
	}
	if repoID == "" {
		return nil
	}
	field := "repository"
	if d.RepositoryID == nil {
		field = "repository_version"
	}
	return objectMissing(s.requireRepo(ctx, user, repoID, mooring.PermWrite), field)
}
