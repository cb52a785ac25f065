package repository

import (
	"context"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/db"
)

// Orphan cleanup, first half: content units no version holds. The second
// half, the bytes in blob storage that no unit needs any more, is
// SweepBlobs.

// orphanLevels are the unit types in the order orphans are deleted: a unit
// is kept while a unit not deleted (yet) refers to it, so referrers go
// first. Manifest lists come before manifests and are deleted in passes
// until none goes, for an index may name indexes.
var orphanLevels = []struct {
	types  []content.Type
	guard  string
	passes bool
}{
	{tagTypes, "", false},
	{[]content.Type{content.TypeManifestList}, docGuard, true},
	{[]content.Type{content.TypeManifest}, docGuard, false},
	{blobTypes, blobGuard, false},
}

// A manifest or list stays while a tag names it or a list lists it; a blob
// while a manifest uses it, or a writer leases it (see LeaseBlobs).
const (
	docGuard = ` AND NOT EXISTS (SELECT 1 FROM contents AS t WHERE t.tagged_id = contents.id)` +
		` AND NOT EXISTS (SELECT 1 FROM content_refs AS r WHERE r.child_digest = contents.digest AND r.role = 'manifest')`
	blobGuard = ` AND NOT EXISTS (SELECT 1 FROM content_refs AS r WHERE r.child_digest = contents.digest AND r.role <> 'manifest')` +
		` AND NOT EXISTS (SELECT 1 FROM blob_leases AS l WHERE l.digest = contents.digest AND l.expires_at > ?)`
)

// DeleteOrphans deletes the content units that no version of any
// repository holds, that were stored before cutoff (Pulp's orphan
// protection time), and that no unit kept refers to (a tag naming it, a
// list listing it, a manifest using it, all kept by these rules too), and
// returns how many of each type it deleted. progress, when not nil, is
// told the running total after each batch.
//
// It runs beside everything else, in any process: each batch is one
// statement whose conditions are checked as it deletes, so a unit added
// to a version, or referred to, meanwhile stays. A writer that read a
// unit's id before it was deleted finds it gone when it makes a version
// (errdef.ErrNotFound) rather than making a version that holds nothing;
// units written inside the transaction that makes their version are never
// seen as orphans.
func (s *Store) DeleteOrphans(ctx context.Context, cutoff time.Time, progress func(deleted int)) (map[content.Type]int, error) {
	counts := map[content.Type]int{}
	total := 0
	for _, level := range orphanLevels {
		ids, err := s.orphanCandidates(ctx, level.types, cutoff)
		if err != nil {
			return counts, err
		}
		for len(ids) > 0 {
			var kept []int64
			before := total
			for chunk := range slices.Chunk(ids, batch) {
				types, left, err := s.deleteUnits(ctx, chunk, cutoff, level.guard)
				if err != nil {
					return counts, err
				}
				for _, t := range types {
					counts[t]++
				}
				total += len(types)
				kept = append(kept, left...)
				if progress != nil && len(types) > 0 {
					progress(total)
				}
			}
			if !level.passes || total == before {
				break
			}
			ids = kept
		}
	}
	return counts, nil
}

// orphanCandidates returns the ids of the units of the given types stored
// before cutoff that no version holds.
func (s *Store) orphanCandidates(ctx context.Context, types []content.Type, cutoff time.Time) ([]int64, error) {
	var ids []int64
	err := s.db.NewSelect().TableExpr("contents AS c").Column("c.id").
		Where("c.type IN (?) AND c.created_at < ?", bun.In(types), cutoff).
		Where("NOT EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.content_id = c.id)").
		Order("c.id").Scan(ctx, &ids)
	return ids, err
}

// deleteUnits deletes the units of ids that are still orphans (the
// conditions of DeleteOrphans, guard included) and returns the types of
// those deleted and the ids it left. A unit a writer refers to in the
// instant between the check and the delete fails the statement on a
// foreign key; the batch is then deleted unit by unit, leaving that one.
func (s *Store) deleteUnits(ctx context.Context, ids []int64, cutoff time.Time, guard string) ([]content.Type, []int64, error) {
	del := func(ids []int64) ([]struct {
		ID   int64        `bun:"id"`
		Type content.Type `bun:"type"`
	}, error) {
		var rows []struct {
			ID   int64        `bun:"id"`
			Type content.Type `bun:"type"`
		}
		args := []any{bun.In(ids), cutoff}
		if guard == blobGuard {
			args = append(args, time.Now().UTC())
		}
		err := s.db.NewRaw("DELETE FROM contents WHERE id IN (?) AND created_at < ?"+
			" AND NOT EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.content_id = contents.id)"+
			guard+" RETURNING id, type", args...).Scan(ctx, &rows)
		return rows, err
	}
	rows, err := del(ids)
	if db.IsForeignKeyViolation(err) {
		rows = rows[:0]
		for _, id := range ids {
			one, err := del([]int64{id})
			if err != nil && !db.IsForeignKeyViolation(err) {
				return nil, nil, err
			}
			rows = append(rows, one...)
		}
	} else if err != nil {
		return nil, nil, err
	}
	gone := make(map[int64]bool, len(rows))
	types := make([]content.Type, len(rows))
	for i, r := range rows {
		gone[r.ID] = true
		types[i] = r.Type
	}
	var left []int64
	for _, id := range ids {
		if !gone[id] {
			left = append(left, id)
		}
	}
	return types, left, nil
}
