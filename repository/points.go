package repository

import (
	"context"
	"iter"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
)

// rcPresentIn is presentIn for the repository_contents alias rc.
const rcPresentIn = "rc.version_added <= ? AND (rc.version_removed IS NULL OR rc.version_removed > ?)"

// Point queries: what callers ask of one version, answered by one query
// rather than by paging through ListContent.

// InVersion returns the units of version v whose digest is d, of the given
// types (any type when none is given). Raw is not loaded. A digest names
// few units (a blob, a manifest or a list, and the tags naming it), so the
// answer is never paged.
func (s *Store) InVersion(ctx context.Context, v VersionRef, d digest.Digest, types ...content.Type) ([]Content, error) {
	var units []Content
	q := s.db.NewSelect().Model(&units).ExcludeColumn("raw").
		Where("digest = ?", d).
		Where("id IN (SELECT rc.content_id FROM repository_contents AS rc WHERE rc.repository_id = ? AND "+rcPresentIn+")",
			v.RepositoryID, v.Number, v.Number).
		Order("id")
	if len(types) > 0 {
		q = q.Where("type IN (?)", bun.In(types))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, err
	}
	return units, nil
}

// VersionHas reports whether version v holds a unit of type t with digest
// d. For blobs, foreign (non-distributable) layers do not count: their
// bytes are not stored.
func (s *Store) VersionHas(ctx context.Context, v VersionRef, t content.Type, d digest.Digest) (bool, error) {
	q := s.db.NewSelect().TableExpr("repository_contents AS rc").
		Join("JOIN contents AS c ON c.id = rc.content_id").
		Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
		Where("rc.content_type = ? AND c.digest = ?", t, d)
	if t == content.TypeBlob {
		q = q.Where("c.foreign_layer = ?", false)
	}
	return q.Exists(ctx)
}

// Tag returns the tag named name in version v (a version holds at most
// one tag of a name), or errdef.ErrNotFound. Raw is not loaded.
func (s *Store) Tag(ctx context.Context, v VersionRef, name string) (*Content, error) {
	tag := new(Content)
	err := s.db.NewSelect().Model(tag).ExcludeColumn("raw").
		Where("name = ? AND type IN (?)", name, bun.In(tagTypes)).
		Where("id IN (SELECT rc.content_id FROM repository_contents AS rc WHERE rc.repository_id = ? AND "+rcPresentIn+")",
			v.RepositoryID, v.Number, v.Number).
		Limit(1).Scan(ctx)
	if err != nil {
		return nil, notFound(err, "tag %q in version %d of repository %q", name, v.Number, v.RepositoryID)
	}
	return tag, nil
}

// TagNames returns the names of the tags in version v, sorted by byte
// (the "lexical order" of the distribution spec's tag listing, whatever
// the database's collation).
func (s *Store) TagNames(ctx context.Context, v VersionRef) ([]string, error) {
	var names []string
	err := s.db.NewSelect().TableExpr("repository_contents AS rc").
		Join("JOIN contents AS c ON c.id = rc.content_id").
		ColumnExpr("c.name").
		Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
		Where("rc.content_type IN (?)", bun.In(tagTypes)).
		Scan(ctx, &names)
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	slices.Sort(names)
	return names, nil
}

// tagTypes are the content types of tags.
var tagTypes = []content.Type{content.TypeManifestTag, content.TypeManifestListTag}

// Contents iterates over every unit matching f, in the order ListContent
// lists them, reading MaxLimit units at a time; f.Page is ignored. The
// iteration stops at the first error, which it yields.
func (s *Store) Contents(ctx context.Context, f ContentFilter) iter.Seq2[Content, error] {
	return func(yield func(Content, error) bool) {
		f.Page = Page{Limit: MaxLimit}
		for {
			units, _, err := s.listContent(ctx, f, false)
			if err != nil {
				yield(Content{}, err)
				return
			}
			for _, u := range units {
				if !yield(u, nil) {
					return
				}
			}
			if len(units) < f.Page.Limit {
				return
			}
			f.Page.Offset += len(units)
		}
	}
}
