package repository

import (
	"context"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
)

// batchSize bounds the digests one IN (…) list carries.
const batchSize = 500

// Present returns which of ds version v holds as units of type t (for
// blobs, foreign layers do not count), in one query per batchSize
// distinct digests: a manifest of 27,500 layers costs 55 queries, not
// 27,500.
func (s *Store) Present(ctx context.Context, v VersionRef, t content.Type, ds []digest.Digest) (map[digest.Digest]bool, error) {
	found := map[digest.Digest]bool{}
	for chunk := range slices.Chunk(distinct(ds), batchSize) {
		var got []digest.Digest
		q := s.db.NewSelect().TableExpr("repository_contents AS rc").
			Join("JOIN contents AS c ON c.id = rc.content_id").
			ColumnExpr("c.digest").
			Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
			Where("rc.content_type = ? AND c.digest IN (?)", t, bun.In(chunk))
		if t == content.TypeBlob {
			q = q.Where("c.foreign_layer = ?", false)
		}
		if err := q.Scan(ctx, &got); err != nil {
			return nil, err
		}
		for _, d := range got {
			found[d] = true
		}
	}
	return found, nil
}

// distinct returns ds without repeats, in first-seen order.
func distinct(ds []digest.Digest) []digest.Digest {
	seen := make(map[digest.Digest]bool, len(ds))
	out := make([]digest.Digest, 0, len(ds))
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
