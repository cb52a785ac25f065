package repository

import (
	"context"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"
)

// A manifest list or OCI index a sync filtered by platform is stored
// whole, with its upstream digest, but holds only some of the manifests
// it names: a sparse list. These queries tell which of its entries are
// there.

// ListedManifest is one entry of a manifest list or OCI index, and the
// manifest it names when that is there.
type ListedManifest struct {
	// Position is the entry's index in the list.
	Position  int
	Digest    digest.Digest
	MediaType string
	Size      int64
	Platform  *ocispec.Platform
	// Unit is the manifest or list the entry names (without Raw), nil when
	// it is not there: not in the version asked about, or, when none was,
	// not stored at all.
	Unit *Content
}

// ListedManifests returns the entries of the manifest list with unit id
// listID, in list order, each with the unit it names when version v holds
// it (when v is nil: when it is stored). It costs two queries for a list
// of up to 500 manifests.
func (s *Store) ListedManifests(ctx context.Context, listID int64, v *VersionRef) ([]ListedManifest, error) {
	var refs []Ref
	if err := s.db.NewSelect().Model(&refs).Where("parent_id = ? AND role = ?", listID, RoleManifest).
		Order("position").Scan(ctx); err != nil {
		return nil, err
	}
	out := make([]ListedManifest, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	ds := make([]digest.Digest, len(refs))
	for i, r := range refs {
		ds[i] = r.ChildDigest
		out[i] = ListedManifest{Position: r.Position, Digest: r.ChildDigest, MediaType: r.MediaType, Size: r.Size, Platform: r.Platform}
	}
	var units []Content
	for chunk := range slices.Chunk(distinct(ds), batch) {
		var got []Content
		q := s.db.NewSelect().Model(&got).ExcludeColumn("raw").
			Where("type IN (?) AND digest IN (?) AND name = ''", bun.In(documentTypes), bun.In(chunk))
		if v != nil {
			// Correlated, so that each unit is checked through the
			// membership index instead of every unit of v being read.
			q = q.Where("EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.content_id = ?TableAlias.id AND rc.repository_id = ? AND "+rcPresentIn+")",
				v.RepositoryID, v.Number, v.Number)
		}
		if err := q.Scan(ctx); err != nil {
			return nil, err
		}
		units = append(units, got...)
	}
	byDigest := make(map[digest.Digest]*Content, len(units))
	for i := range units {
		byDigest[units[i].Digest] = &units[i]
	}
	for i := range out {
		out[i].Unit = byDigest[out[i].Digest]
	}
	return out, nil
}

// NamedByList reports whether a manifest list or OCI index in version v
// names digest d among its manifests: with d itself not in v, the list is
// sparse there. One indexed query.
func (s *Store) NamedByList(ctx context.Context, v VersionRef, d digest.Digest) (bool, error) {
	// The refs naming d are few (content_refs_child); each is checked
	// against the version through the membership index.
	return s.db.NewSelect().TableExpr("content_refs AS r").ColumnExpr("1").
		Where("r.child_digest = ? AND r.role = ?", d, RoleManifest).
		Where("EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.content_id = r.parent_id AND rc.repository_id = ? AND "+rcPresentIn+")",
			v.RepositoryID, v.Number, v.Number).
		Exists(ctx)
}
