package repository

import (
	"context"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
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
	// Subject selects manifests and lists whose subject is this digest (OCI
	// 1.1 referrers).
	Subject digest.Digest
	Page
}

// ListContent lists content units ordered by when they were first stored,
// with the total matching the filter. Raw is not loaded; ContentByID does.
//
// Listing a version reads only the membership index up to the page, then
// the page's units, so a page of a 100k-unit version stays fast.
func (s *Store) ListContent(ctx context.Context, f ContentFilter) ([]Content, int, error) {
	return s.listContent(ctx, f, true)
}

// listContent is ListContent; without count the total is not computed.
func (s *Store) listContent(ctx context.Context, f ContentFilter, count bool) ([]Content, int, error) {
	p, err := f.Page.norm()
	if err != nil {
		return nil, 0, err
	}
	if f.Type != "" && !f.Type.Valid() {
		return nil, 0, errdef.New(errdef.ErrInvalid, "unknown content type %q", f.Type)
	}
	var refs []*VersionRef
	for _, r := range []*VersionRef{f.In, f.AddedIn, f.RemovedIn} {
		if r != nil {
			refs = append(refs, r)
		}
	}
	needUnits := f.Digest != "" || f.Name != "" || f.MediaType != "" || f.Subject != ""

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
		if f.Subject != "" {
			q = q.Where("c.subject = ?", f.Subject)
		}
		return q, key
	}

	total := 0
	if count {
		total, err = s.storedCount(ctx, f, refs, needUnits)
		if err != nil {
			return nil, 0, err
		}
	}
	if total < 0 {
		q, _ := build()
		n, err := q.Count(ctx)
		if err != nil {
			return nil, 0, err
		}
		total = int(n)
	}
	q, key := build()
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

// storedCount answers the total of a listing from the version's stored
// summary when the filter is one version filter and at most a type; it
// returns -1 when the listing must be counted.
func (s *Store) storedCount(ctx context.Context, f ContentFilter, refs []*VersionRef, needUnits bool) (int, error) {
	if len(refs) != 1 || needUnits {
		return -1, nil
	}
	sum, err := s.Summary(ctx, refs[0].RepositoryID, refs[0].Number)
	if err != nil {
		return 0, err
	}
	m := sum.Removed
	switch refs[0] {
	case f.In:
		m = sum.Present
	case f.AddedIn:
		m = sum.Added
	}
	if f.Type != "" {
		return m[f.Type], nil
	}
	total := 0
	for _, k := range m {
		total += k
	}
	return total, nil
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

// presentIn is the membership condition "in version ?" (the number twice).
const presentIn = "version_added <= ? AND (version_removed IS NULL OR version_removed > ?)"

func newSummary() *Summary {
	return &Summary{Added: map[content.Type]int{}, Removed: map[content.Type]int{}, Present: map[content.Type]int{}}
}

// prune drops zero counts, so a summary lists only types it has.
func (s *Summary) prune() {
	for _, m := range []map[content.Type]int{s.Added, s.Removed, s.Present} {
		for t, k := range m {
			if k == 0 {
				delete(m, t)
			}
		}
	}
}

// countWhere counts a repository's membership rows per content type.
func (s *Store) countWhere(ctx context.Context, repoID, where string, args ...any) (map[content.Type]int, error) {
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

// Summary returns the content summary of version n of a repository. It is
// stored with the version, so this costs one row read.
func (s *Store) Summary(ctx context.Context, repoID string, n int) (*Summary, error) {
	v, err := s.Version(ctx, repoID, n)
	if err != nil {
		return nil, err
	}
	if v.Counts != nil {
		return v.Counts, nil
	}
	sum := newSummary()
	if sum.Added, err = s.countWhere(ctx, repoID, "version_added = ?", n); err != nil {
		return nil, err
	}
	if sum.Removed, err = s.countWhere(ctx, repoID, "version_removed = ?", n); err != nil {
		return nil, err
	}
	if sum.Present, err = s.countWhere(ctx, repoID, presentIn, n, n); err != nil {
		return nil, err
	}
	return sum, nil
}
