package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

type contentJSON struct {
	Href          string       `json:"_href"`
	Created       string       `json:"_created"`
	Type          content.Type `json:"_type"`
	Digest        string       `json:"digest"`
	MediaType     string       `json:"media_type"`
	Size          *int64       `json:"size,omitempty"`
	SchemaVersion *int         `json:"schema_version,omitempty"`
	Name          *string      `json:"name,omitempty"`
	// TaggedManifest links the manifest or list a tag names.
	TaggedManifest *string `json:"tagged_manifest,omitempty"`
	// ConfigBlob and Blobs link a manifest's config and layers;
	// Manifests links a list's manifests. Units not stored are left out.
	ConfigBlob *string   `json:"config_blob,omitempty"`
	Blobs      *[]string `json:"blobs,omitempty"`
	Manifests  *[]string `json:"manifests,omitempty"`
	// Lists: which of their entries are present (see api_listed.go).
	listedJSON
}

// contentViews renders units, linking each tag to what it names; a list's
// entries are present when version in holds them (stored, when in is nil).
func (s *Server) contentViews(ctx context.Context, units []repository.Content, in *repository.VersionRef) ([]contentJSON, error) {
	out := make([]contentJSON, len(units))
	for i := range units {
		out[i] = contentView(&units[i])
		if units[i].TaggedID != 0 {
			target, err := s.repos.ContentByID(ctx, units[i].TaggedID)
			if err != nil {
				return nil, err
			}
			h := contentHref(target.Type, target.UUID)
			out[i].TaggedManifest = &h
		}
		if err := s.linkRefs(ctx, &units[i], &out[i]); err != nil {
			return nil, err
		}
		if err := s.listEntries(ctx, &units[i], in, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// linkRefs fills in the links from a manifest or list to what it names.
func (s *Server) linkRefs(ctx context.Context, c *repository.Content, out *contentJSON) error {
	if c.Type != content.TypeManifest && c.Type != content.TypeManifestList {
		return nil
	}
	refs, err := s.repos.Refs(ctx, c.ID)
	if err != nil {
		return err
	}
	blobs, manifests := []string{}, []string{}
	for _, ref := range refs {
		typ := content.TypeBlob
		if ref.Role == repository.RoleManifest {
			typ = content.TypeManifest
			if content.IsManifestList(ref.MediaType) {
				typ = content.TypeManifestList
			}
		}
		child, err := s.repos.ContentByDigest(ctx, typ, ref.ChildDigest)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		h := contentHref(child.Type, child.UUID)
		switch ref.Role {
		case repository.RoleConfig:
			out.ConfigBlob = &h
		case repository.RoleLayer:
			blobs = append(blobs, h)
		default:
			manifests = append(manifests, h)
		}
	}
	if c.Type == content.TypeManifest {
		out.Blobs = &blobs
	} else {
		out.Manifests = &manifests
	}
	return nil
}

func contentView(c *repository.Content) contentJSON {
	out := contentJSON{
		Href:      contentHref(c.Type, c.UUID),
		Created:   ts(c.CreatedAt),
		Type:      c.Type,
		Digest:    c.Digest.String(),
		MediaType: c.MediaType,
	}
	switch c.Type {
	case content.TypeBlob:
		size := c.Size
		out.Size = &size
	case content.TypeManifest, content.TypeManifestList:
		size, sv := c.Size, c.SchemaVersion
		out.Size, out.SchemaVersion = &size, &sv
	default:
		name := c.Name
		out.Name = &name
	}
	return out
}

// versionFilter parses a repository version href filter.
func versionFilter(q *query, param string) *repository.VersionRef {
	s := q.str(param)
	if s == "" {
		return nil
	}
	path := s
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		path = u.Path
	}
	key, ok := parseVersionHref(path)
	if !ok {
		q.errs[param] = append(q.errs[param], "Invalid hyperlink - No URL match.")
		return nil
	}
	id, n := splitVersionKey(key)
	return &repository.VersionRef{RepositoryID: id, Number: n}
}

func (s *Server) listContent(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := repository.ContentFilter{
		Type:      contentKinds[mux.Vars(r)["kind"]],
		In:        versionFilter(q, "repository_version"),
		AddedIn:   versionFilter(q, "repository_version_added"),
		RemovedIn: versionFilter(q, "repository_version_removed"),
		Name:      q.str("name"),
		MediaType: q.str("media_type"),
		Page:      repository.Page{Limit: limit, Offset: offset},
	}
	if d := q.str("digest"); d != "" {
		if _, err := digest.Parse(d); err != nil {
			q.errs["digest"] = append(q.errs["digest"], "Enter a valid digest such as sha256:<64 hex digits>.")
		}
		f.Digest = digest.Digest(d)
	}
	if err := q.done(); err != nil {
		return err
	}
	// A version that does not exist is a bad filter, not an empty list.
	for _, p := range []struct {
		param string
		ref   *repository.VersionRef
	}{{"repository_version", f.In}, {"repository_version_added", f.AddedIn}, {"repository_version_removed", f.RemovedIn}} {
		if p.ref == nil {
			continue
		}
		if _, err := s.repos.Version(r.Context(), p.ref.RepositoryID, p.ref.Number); err != nil {
			if errors.Is(err, errdef.ErrNotFound) {
				return fieldError{p.param: {"Invalid hyperlink - Object does not exist."}}
			}
			return err
		}
	}
	units, n, err := s.repos.ListContent(r.Context(), f)
	if err != nil {
		return err
	}
	out, err := s.contentViews(r.Context(), units, f.In)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) getContent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.repos.ContentByUUID(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if c.Type != contentKinds[mux.Vars(r)["kind"]] {
		return errNotFound
	}
	out, err := s.contentViews(r.Context(), []repository.Content{*c}, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out[0])
	return nil
}
