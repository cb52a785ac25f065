package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// putManifest answers PUT /v2/<name>/manifests/<reference> ("Pushing
// manifests"): the manifest is validated, every blob and child it names
// must be in the repository (non-distributable layers excepted), and a new
// version holds it, its tag (and any ?tag=) and the blobs it references.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePush(r); err != nil {
		return err
	}
	ctx := r.Context()
	name, ref := mux.Vars(r)["name"], mux.Vars(r)["reference"]
	var want digest.Digest
	var tags []string
	if d, err := digest.Parse(ref); err == nil {
		if want, err = parseDigest(d.String()); err != nil {
			return err
		}
	} else {
		if err := content.ValidateTagName(ref); err != nil {
			return fmt.Errorf("%w: %v", errdef.ErrTagInvalid, err)
		}
		tags = append(tags, ref)
	}
	for _, t := range r.URL.Query()["tag"] {
		if err := content.ValidateTagName(t); err != nil {
			return fmt.Errorf("%w: %v", errdef.ErrTagInvalid, err)
		}
		tags = append(tags, t)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, content.MaxManifestSize+1))
	if err != nil {
		return err
	}
	doc, err := content.ParseDigest(r.Header.Get("Content-Type"), raw, want)
	if err != nil {
		if errors.Is(err, content.ErrDigestMismatch) {
			return fmt.Errorf("%w: %v", errdef.ErrDigestInvalid, err)
		}
		if errors.Is(err, content.ErrTooLarge) {
			return fmt.Errorf("%w: %v", errdef.ErrManifestTooLarge, err)
		}
		return fmt.Errorf("%w: %v", errdef.ErrManifestInvalid, err)
	}
	repo, err := s.pushTarget(ctx, name, true)
	if err != nil {
		return err
	}

	// What the manifest references must be here.
	var add []int64
	var blobs []content.Blob
	var subject *ocispec.Descriptor
	switch m := doc.(type) {
	case *content.Manifest:
		subject = m.Subject
		refs := m.Layers
		if m.Config != nil {
			refs = append([]content.Blob{*m.Config}, refs...)
		}
		for _, b := range refs {
			if b.Foreign {
				blobs = append(blobs, b)
				continue
			}
			ok, err := s.hasBlob(ctx, repo, b.Digest)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %s", errdef.ErrManifestBlobUnknown, b.Digest)
			}
			if b.Size < 0 {
				info, err := s.blobs.Stat(ctx, b.Digest)
				if err != nil {
					return err
				}
				b.Size = info.Size
			}
			blobs = append(blobs, b)
		}
	case *content.ManifestList:
		subject = m.Subject
		for _, child := range m.Manifests {
			units, err := s.inVersion(ctx, repo, child.Digest)
			if err != nil {
				return err
			}
			found := false
			for _, u := range units {
				if u.Type == content.TypeManifest || u.Type == content.TypeManifestList {
					add = append(add, u.ID)
					found = true
				}
			}
			if !found {
				return fmt.Errorf("%w: child manifest %s is not in the repository", errdef.ErrManifestBlobUnknown, child.Digest)
			}
		}
	}
	units, err := s.repos.PutBlobs(ctx, blobs)
	if err != nil {
		return err
	}
	for _, u := range units {
		add = append(add, u.ID)
	}
	m, err := s.repos.PutDocument(ctx, doc)
	if err != nil {
		return err
	}
	add = append(add, m.ID)
	h := w.Header()
	for _, t := range tags {
		tag, err := s.repos.PutTag(ctx, t, m)
		if err != nil {
			return err
		}
		add = append(add, tag.ID)
		if t != ref {
			h.Add("OCI-Tag", t)
		}
	}
	if err := s.newPushVersion(ctx, name, repo, repository.Change{Add: add}); err != nil {
		return err
	}
	// The blobs are in a version now.
	if len(blobs) > 0 {
		var ds []digest.Digest
		for _, b := range blobs {
			ds = append(ds, b.Digest)
		}
		if _, err := s.db.NewDelete().Model((*pendingBlob)(nil)).
			Where("repository_id = ? AND digest IN (?)", repo.ID, bun.In(ds)).Exec(ctx); err != nil {
			return err
		}
	}
	h.Set("Location", location(name, "manifests", m.Digest.String()))
	h.Set("Docker-Content-Digest", m.Digest.String())
	if subject != nil {
		h.Set("OCI-Subject", subject.Digest.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteManifest answers DELETE /v2/<name>/manifests/<reference>: by digest
// the manifest and the tags naming it, by tag the tag alone, leave in a new
// version.
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePush(r); err != nil {
		return err
	}
	ctx := r.Context()
	name, ref := mux.Vars(r)["name"], mux.Vars(r)["reference"]
	repo, err := s.pushTarget(ctx, name, false)
	if err != nil {
		return err
	}
	unknown := errdef.New(errdef.ErrManifestUnknown, "%s:%s", name, ref)
	var remove []int64
	if d, perr := digest.Parse(ref); perr == nil {
		units, err := s.inVersion(ctx, repo, d)
		if err != nil {
			return err
		}
		for _, u := range units {
			if u.Type == content.TypeManifest || u.Type == content.TypeManifestList || u.Type.IsTag() {
				remove = append(remove, u.ID)
			}
		}
	} else {
		if content.ValidateTagName(ref) != nil {
			return fmt.Errorf("%w: %s", errdef.ErrTagInvalid, ref)
		}
		units, _, err := s.repos.ListContent(ctx, repository.ContentFilter{
			In:   &repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion},
			Name: ref, Page: repository.Page{Limit: 10}})
		if err != nil {
			return err
		}
		for _, u := range units {
			if u.Type.IsTag() {
				remove = append(remove, u.ID)
			}
		}
	}
	if len(remove) == 0 {
		return unknown
	}
	if err := s.newPushVersion(ctx, name, repo, repository.Change{Remove: remove}); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteBlob answers DELETE /v2/<name>/blobs/<digest>: the blob leaves the
// repository (pending, and in a new version when one holds it). Its bytes
// stay in storage: other repositories may hold it.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePush(r); err != nil {
		return err
	}
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	d, err := parseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	repo, err := s.pushTarget(ctx, name, false)
	if err != nil {
		return err
	}
	res, err := s.db.NewDelete().Model((*pendingBlob)(nil)).Where("repository_id = ? AND digest = ?", repo.ID, d).Exec(ctx)
	if err != nil {
		return err
	}
	n, _ := res.RowsAffected()
	units, err := s.inVersion(ctx, repo, d)
	if err != nil {
		return err
	}
	var remove []int64
	for _, u := range units {
		if u.Type == content.TypeBlob {
			remove = append(remove, u.ID)
		}
	}
	if n == 0 && len(remove) == 0 {
		return errdef.New(errdef.ErrBlobUnknown, "%s", d)
	}
	if len(remove) > 0 {
		if err := s.newPushVersion(ctx, name, repo, repository.Change{Remove: remove}); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// getReferrers answers GET /v2/<name>/referrers/<digest> (distribution
// spec "Listing Referrers"): an OCI index of the manifests in the served
// version whose subject is the digest, filtered by ?artifactType=. A name
// not served, or a subject nothing refers to, has an empty list.
func (s *Server) getReferrers(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	d, err := parseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("artifactType")
	descs := []ocispec.Descriptor{}
	v, err := s.registry.Resolve(ctx, name)
	if err != nil && !errors.Is(err, errdef.ErrNameUnknown) {
		return err
	}
	if err == nil {
		units, _, err := s.repos.ListContent(ctx, repository.ContentFilter{
			In:      &repository.VersionRef{RepositoryID: v.RepositoryID, Number: v.Number},
			Subject: d, Page: repository.Page{Limit: repository.MaxLimit}})
		if err != nil {
			return err
		}
		for _, u := range units {
			if u.Type != content.TypeManifest && u.Type != content.TypeManifestList {
				continue
			}
			c, err := s.repos.ContentByID(ctx, u.ID)
			if err != nil {
				return err
			}
			desc := ocispec.Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: int64(len(c.Raw)), ArtifactType: c.ArtifactType}
			if doc, err := content.ParseDigest(c.MediaType, c.Raw, c.Digest); err == nil {
				switch m := doc.(type) {
				case *content.Manifest:
					desc.Annotations = m.Annotations
					if desc.ArtifactType == "" && m.Config != nil {
						desc.ArtifactType = m.Config.MediaType
					}
				case *content.ManifestList:
					desc.Annotations = m.Annotations
				}
			}
			if filter != "" && desc.ArtifactType != filter {
				continue
			}
			descs = append(descs, desc)
		}
	}
	body, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	})
	if err != nil {
		return err
	}
	h := w.Header()
	if filter != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	h.Set("Content-Type", ocispec.MediaTypeImageIndex)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, bytes.NewReader(body))
	}
	return nil
}
