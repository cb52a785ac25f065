package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/repository"
)

// Repository actions (Pulp's tag, untag, add, remove, copy_tags,
// copy_manifests, modify), repository and version deletes, and orphan
// cleanup: each answers 202 with the task that does it, once the SDK has
// checked what it names.

var contentHrefRe = regexp.MustCompile(`^/pulp/api/v3/content/docker/(manifests|blobs|manifest-lists|manifest-tags|manifest-list-tags)/([0-9a-f-]{36})/$`)

// parseContentHref returns the unit a content href names.
func parseContentHref(path string) (repository.UnitRef, bool) {
	m := contentHrefRe.FindStringSubmatch(path)
	if m == nil || !isUUID(m[2]) {
		return repository.UnitRef{}, false
	}
	return repository.UnitRef{Type: contentKinds[m[1]], ID: m[2]}, true
}

// list reads a JSON list of strings.
func (b *body) list(field string, required bool) *[]string {
	if !b.has(field) {
		if required {
			b.required(field)
		}
		return nil
	}
	var out []string
	if err := json.Unmarshal(b.fields[field], &out); err != nil || out == nil {
		b.fail(field, "Expected a list of items.")
		return nil
	}
	return &out
}

// units reads a list of content hrefs; with all, ["*"] is allowed too.
func (b *body) units(field string, required, all bool) []repository.UnitRef {
	hrefs := b.list(field, required)
	if hrefs == nil {
		return nil
	}
	refs := []repository.UnitRef{}
	for _, h := range *hrefs {
		if all && h == repository.AllUnits {
			refs = append(refs, repository.UnitRef{ID: repository.AllUnits})
			continue
		}
		path := h
		if u, err := url.Parse(h); err == nil && u.Scheme != "" {
			path = u.Path
		}
		r, ok := parseContentHref(path)
		if !ok {
			b.fail(field, "Invalid hyperlink - No URL match: "+h)
			return nil
		}
		refs = append(refs, r)
	}
	return refs
}

// source reads source_repository or source_repository_version.
func (b *body) source() *repository.Source {
	repo := b.href("source_repository", false, false, parseRepoHref)
	version := b.href("source_repository_version", false, false, parseVersionHref)
	switch {
	case repo != nil && version != nil:
		b.fail("source_repository", "Only one of source_repository and source_repository_version may be given.")
	case repo != nil:
		return &repository.Source{RepositoryID: *repo}
	case version != nil:
		id, n := splitVersionKey(*version)
		return &repository.Source{RepositoryID: id, Version: &n}
	case !b.has("source_repository") && !b.has("source_repository_version"):
		b.fail("source_repository", "One of source_repository and source_repository_version is required.")
	}
	return nil
}

// readAction reads the body of the action kind.
func readAction(r *http.Request, kind, repoID string) (repository.Action, error) {
	a := repository.Action{Kind: kind}
	b, err := decodeBody(r)
	if err != nil {
		return a, err
	}
	switch kind {
	case repository.ActionTag:
		if t := b.str("tag", true, false); t != nil {
			a.Tag = *t
		}
		if d := b.str("digest", true, false); d != nil {
			a.Digest = digest.Digest(*d)
		}
	case repository.ActionUntag:
		if t := b.str("tag", true, false); t != nil {
			a.Tag = *t
		}
	case repository.ActionAdd:
		a.Units = b.units("content_units", true, false)
	case repository.ActionRemove:
		a.Units = b.units("content_units", true, true)
	case repository.ActionCopyTags:
		a.Source = b.source()
		if names := b.list("names", false); names != nil {
			a.Names = *names
		}
	case repository.ActionCopyManifests:
		a.Source = b.source()
		if ds := b.list("digests", false); ds != nil {
			a.Digests = make([]digest.Digest, len(*ds))
			for i, d := range *ds {
				a.Digests[i] = digest.Digest(d)
			}
		}
		if mts := b.list("media_types", false); mts != nil {
			a.MediaTypes = *mts
		}
	case repository.ActionModify:
		a.Add = b.units("add_content_units", false, false)
		a.Remove = b.units("remove_content_units", false, true)
		if v := b.href("base_version", false, true, parseVersionHref); v != nil && *v != "" {
			id, n := splitVersionKey(*v)
			if id != repoID {
				b.fail("base_version", "The base version must be a version of this repository.")
			}
			a.Base = &n
		}
	}
	return a, b.done()
}

// repositoryAction answers POST repositories/<id>/<kind>/: 202 and the
// task that applies the action.
func repositoryAction(kind string) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		id := mux.Vars(r)["id"]
		a, err := readAction(r, kind, id)
		if err != nil {
			return err
		}
		if a.Source != nil {
			if err := s.requireRepo(r.Context(), s.scopedUser(r), a.Source.RepositoryID, mooring.PermRead); err != nil {
				return objectMissing(err, "source_repository")
			}
		}
		t, err := s.m.EnqueueAction(r.Context(), id, a, repoHref(id))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
		return nil
	}
}

func (s *Server) deleteRepository(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	t, err := s.m.EnqueueDeleteRepository(r.Context(), id, repoHref(id))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}

func (s *Server) deleteVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	t, err := s.m.EnqueueDeleteVersion(r.Context(), id, n, repoHref(id))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}

// cleanupOrphans is POST orphans/cleanup/ {orphan_protection_time}: in
// minutes, Pulp's default 1440 when absent.
func (s *Server) cleanupOrphans(w http.ResponseWriter, r *http.Request) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	minutes := b.integer("orphan_protection_time", 0, 10*365*24*60)
	if err := b.done(); err != nil {
		return err
	}
	protect := time.Duration(0) // mooring.DefaultOrphanProtection
	if minutes != nil {
		protect = time.Duration(*minutes) * time.Minute
		if protect == 0 {
			protect = mooring.NoProtection
		}
	}
	t, err := s.m.EnqueueOrphanCleanup(r.Context(), protect)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}
