package repository

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
)

// BlobBytes returns the bytes of the distinct stored blobs the versions
// refs hold together: what they occupy in blob storage, each blob counted
// once however many of them hold it (foreign layers, never stored, are
// not counted).
func (s *Store) BlobBytes(ctx context.Context, refs []VersionRef) (int64, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	members := s.db.NewSelect().TableExpr("repository_contents AS rc").ColumnExpr("rc.content_id").
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			for _, r := range refs {
				q = q.WhereOr("rc.repository_id = ? AND "+rcPresentIn, r.RepositoryID, r.Number, r.Number)
			}
			return q
		})
	var total int64
	err := s.db.NewSelect().TableExpr("contents AS c").ColumnExpr("COALESCE(SUM(c.size), 0)").
		Where("c.type = ? AND c.foreign_layer = ? AND c.id IN (?)", content.TypeBlob, false, members).
		Scan(ctx, &total)
	return total, err
}
