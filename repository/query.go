package repository

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
)

// VersionRef names version Number of repository RepositoryID.
type VersionRef struct {
	RepositoryID string
	Number       int
}

// ContentFilter selects content units in ListContent. Zero fields do not
// filter. The version filters may be combined.
type ContentFilter struct {
	Type content.Type
	// In selects units present in a version.
	In *VersionRef
	// AddedIn selects units that a version added.
	AddedIn *VersionRef
	// RemovedIn selects units that a version removed.
	RemovedIn *VersionRef
	Digest    digest.Digest
	// Name selects tags by name.
	Name      string
	MediaType string
	Page
}

// ListContent lists content units ordered by when they were first stored,
// with the total matching the filter. Raw is not loaded; ContentByID does.
//
// Listing a version reads only the membership index up to the page, then
// the page's units, so a page of a 100k-unit version stays fast.
func (s *Store) ListContent(ctx context.Context, f ContentFilter) ([]Content, int, error) {
	p, err := f.Page.norm()
	if err != nil {
		return nil, 0, err
	}
	if f.Type != "" && !f.Type.Valid() {
		return nil, 0, fmt.Errorf("%w: unknown content type %q", ErrInvalid, f.Type)
	}
	var refs []*VersionRef
	for _, r := range []*VersionRef{f.In, f.AddedIn, f.RemovedIn} {
		if r != nil {
			refs = append(refs, r)
		}
	}
	needUnits := f.Digest != "" || f.Name != "" || f.MediaType != ""

	// build returns the query selecting matching ids; key is the id column.
	build := func() (*bun.SelectQuery, string) {
		var q *bun.SelectQuery
		key := "c.id"
		if len(refs) > 0 {
			key = "rc.content_id"
			q = s.db.NewSelect().TableExpr("repository_contents AS rc")
			q = versionWhere(q, "rc", f, refs[0])
			if needUnits {
				q = q.Join("JOIN contents AS c ON c.id = rc.content_id")
			}
			if f.Type != "" {
				q = q.Where("rc.content_type = ?", f.Type)
			}
			for _, r := range refs[1:] {
				sub := s.db.NewSelect().TableExpr("repository_contents AS rc2").ColumnExpr("1").
					Where("rc2.content_id = rc.content_id")
				sub = versionWhere(sub, "rc2", f, r)
				q = q.Where("EXISTS (?)", sub)
			}
		} else {
			q = s.db.NewSelect().TableExpr("contents AS c")
			if f.Type != "" {
				q = q.Where("c.type = ?", f.Type)
			}
		}
		if f.Digest != "" {
			q = q.Where("c.digest = ?", f.Digest)
		}
		if f.Name != "" {
			q = q.Where("c.name = ?", f.Name)
		}
		if f.MediaType != "" {
			q = q.Where("c.media_type = ?", f.MediaType)
		}
		return q, key
	}

	q, key := build()
	n, err := q.Count(ctx)
	if err != nil {
		return nil, 0, err
	}
	total := int(n)
	q, key = build()
	var ids []int64
	err = q.ColumnExpr(key).OrderExpr(key).Limit(int64(p.Limit)).Offset(int64(p.Offset)).Scan(ctx, &ids)
	if err != nil {
		return nil, 0, err
	}
	if len(ids) == 0 {
		return []Content{}, total, nil
	}
	var units []Content
	if err := s.db.NewSelect().Model(&units).ExcludeColumn("raw").Where("id IN (?)", bun.In(ids)).
		Order("id").Scan(ctx); err != nil {
		return nil, 0, err
	}
	return units, total, nil
}

// versionWhere restricts alias (a repository_contents alias) to the rows of
// r that f's filter kind asks for.
func versionWhere(q *bun.SelectQuery, alias string, f ContentFilter, r *VersionRef) *bun.SelectQuery {
	q = q.Where(alias+".repository_id = ?", r.RepositoryID)
	switch r {
	case f.In:
		return q.Where(alias+".version_added <= ? AND ("+alias+".version_removed IS NULL OR "+alias+".version_removed > ?)", r.Number, r.Number)
	case f.AddedIn:
		return q.Where(alias+".version_added = ?", r.Number)
	default:
		return q.Where(alias+".version_removed = ?", r.Number)
	}
}

// Summary counts a version's units per content type: those it added, those
// it removed, and all present in it. Types with no units are absent.
type Summary struct {
	Added   map[content.Type]int `json:"added"`
	Removed map[content.Type]int `json:"removed"`
	Present map[content.Type]int `json:"present"`
}

// Summary returns the content summary of version n of a repository.
func (s *Store) Summary(ctx context.Context, repoID string, n int) (*Summary, error) {
	if _, err := s.Version(ctx, repoID, n); err != nil {
		return nil, err
	}
	count := func(where string, args ...any) (map[content.Type]int, error) {
		var rows []struct {
			Type  content.Type `bun:"content_type"`
			Count int          `bun:"n"`
		}
		err := s.db.NewSelect().Table("repository_contents").ColumnExpr("content_type, count(*) AS n").
			Where("repository_id = ?", repoID).Where(where, args...).
			GroupExpr("content_type").Scan(ctx, &rows)
		out := make(map[content.Type]int, len(rows))
		for _, r := range rows {
			out[r.Type] = r.Count
		}
		return out, err
	}
	var sum Summary
	var err error
	if sum.Added, err = count("version_added = ?", n); err != nil {
		return nil, err
	}
	if sum.Removed, err = count("version_removed = ?", n); err != nil {
		return nil, err
	}
	if sum.Present, err = count("version_added <= ? AND (version_removed IS NULL OR version_removed > ?)", n, n); err != nil {
		return nil, err
	}
	return &sum, nil
}
