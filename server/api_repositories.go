package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// timeFormat is how every timestamp is shown: RFC 3339, UTC, microseconds.
const timeFormat = "2006-01-02T15:04:05.000000Z"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

type repositoryJSON struct {
	Href              string  `json:"_href"`
	Created           string  `json:"_created"`
	VersionsHref      string  `json:"_versions_href"`
	LatestVersionHref string  `json:"_latest_version_href"`
	Name              string  `json:"name"`
	Description       *string `json:"description"`
	RetainVersions    *int    `json:"retain_repo_versions"`
}

func repositoryView(r *repository.Repository) repositoryJSON {
	out := repositoryJSON{
		Href:              repoHref(r.ID),
		Created:           ts(r.CreatedAt),
		VersionsHref:      versionsHref(r.ID),
		LatestVersionHref: versionHref(r.ID, r.LatestVersion),
		Name:              r.Name,
	}
	if r.Description != "" {
		d := r.Description
		out.Description = &d
	}
	if r.RetainVersions > 0 {
		n := r.RetainVersions
		out.RetainVersions = &n
	}
	return out
}

// retainField reads retain_repo_versions: a count of at least 1, or null
// (0 to the SDK: keep every version).
func retainField(b *body) *int {
	if b.has("retain_repo_versions") && b.isNull("retain_repo_versions") {
		zero := 0
		return &zero
	}
	return b.integer("retain_repo_versions", 1, 1<<30)
}

func (s *Server) listRepositories(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := repository.RepositoryFilter{Name: q.str("name"), Page: repository.Page{Limit: limit, Offset: offset}}
	if err := q.done(); err != nil {
		return err
	}
	var err error
	if f.IDs, _, err = s.visible(r); err != nil {
		return err
	}
	repos, n, err := s.repos.ListRepositories(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]repositoryJSON, len(repos))
	for i := range repos {
		out[i] = repositoryView(&repos[i])
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) createRepository(w http.ResponseWriter, r *http.Request) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	name := b.str("name", true, false)
	desc := b.str("description", false, true)
	retain := retainField(b)
	if err := b.done(); err != nil {
		return err
	}
	spec := repository.RepositorySpec{Name: *name}
	if desc != nil {
		spec.Description = *desc
	}
	if retain != nil {
		spec.RetainVersions = *retain
	}
	repo, err := s.repos.CreateRepositoryWith(r.Context(), spec)
	if err != nil {
		return onField(err, "name", errdef.ErrConflict, errdef.ErrInvalid)
	}
	if user := s.scopedUser(r); user != "" {
		// A creator owns what it creates.
		if err := s.users.AddRole(r.Context(), mooring.Role{Username: user, Role: mooring.RoleOwner, Kind: mooring.KindRepository, Object: repo.ID}); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusCreated, repositoryView(repo))
	return nil
}

func (s *Server) getRepository(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.repos.Repository(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, repositoryView(repo))
	return nil
}

func (s *Server) updateRepository(w http.ResponseWriter, r *http.Request) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	u := repository.RepositoryUpdate{Name: b.str("name", true, false), Description: b.str("description", false, true),
		RetainVersions: retainField(b)}
	if err := b.done(); err != nil {
		return err
	}
	if r.Method == http.MethodPut && u.Description == nil {
		empty := ""
		u.Description = &empty
	}
	if r.Method == http.MethodPut && u.RetainVersions == nil {
		zero := 0
		u.RetainVersions = &zero
	}
	repo, err := s.repos.UpdateRepository(r.Context(), mux.Vars(r)["id"], u)
	if err != nil {
		return onField(err, "name", errdef.ErrConflict, errdef.ErrInvalid)
	}
	writeJSON(w, http.StatusOK, repositoryView(repo))
	return nil
}

type versionJSON struct {
	Href           string       `json:"_href"`
	Created        string       `json:"_created"`
	Number         int          `json:"number"`
	BaseVersion    *string      `json:"base_version"`
	ContentSummary *summaryJSON `json:"content_summary"`
}

type summaryEntry struct {
	Count int    `json:"count"`
	Href  string `json:"href"`
}

type summaryJSON struct {
	Added   map[content.Type]summaryEntry `json:"added"`
	Removed map[content.Type]summaryEntry `json:"removed"`
	Present map[content.Type]summaryEntry `json:"present"`
}

func versionView(v *repository.Version, sum *repository.Summary) versionJSON {
	href := versionHref(v.RepositoryID, v.Number)
	out := versionJSON{Href: href, Created: ts(v.CreatedAt), Number: v.Number}
	if v.BaseVersion != nil {
		b := versionHref(v.RepositoryID, *v.BaseVersion)
		out.BaseVersion = &b
	}
	if sum != nil {
		part := func(counts map[content.Type]int, param string) map[content.Type]summaryEntry {
			m := make(map[content.Type]summaryEntry, len(counts))
			for t, n := range counts {
				if n > 0 {
					m[t] = summaryEntry{Count: n, Href: contentListHref(t) + "?" + param + "=" + href}
				}
			}
			return m
		}
		out.ContentSummary = &summaryJSON{
			Added:   part(sum.Added, "repository_version_added"),
			Removed: part(sum.Removed, "repository_version_removed"),
			Present: part(sum.Present, "repository_version"),
		}
	}
	return out
}

func versionNumber(r *http.Request) (int, error) {
	n, err := strconv.Atoi(mux.Vars(r)["number"])
	if err != nil {
		return 0, errNotFound
	}
	return n, nil
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	if err := q.done(); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	versions, n, err := s.repos.ListVersions(r.Context(), id, repository.Page{Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	out := make([]versionJSON, len(versions))
	for i := range versions {
		// The summary stored with the version, read with it: a version
		// deleted since the listing (by retention, say) is still shown.
		sum := versions[i].Counts
		if sum == nil {
			if sum, err = s.repos.Summary(r.Context(), id, versions[i].Number); err != nil {
				return err
			}
		}
		out[i] = versionView(&versions[i], sum)
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	v, err := s.repos.Version(r.Context(), id, n)
	if err != nil {
		return err
	}
	sum, err := s.repos.Summary(r.Context(), id, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, versionView(v, sum))
	return nil
}
