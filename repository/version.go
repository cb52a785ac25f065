package repository

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
)

// membership is one row of repository_contents.
type membership struct {
	bun.BaseModel `bun:"table:repository_contents"`

	ID             int64        `bun:"id,pk,autoincrement"`
	RepositoryID   string       `bun:"repository_id"`
	ContentID      int64        `bun:"content_id"`
	ContentType    content.Type `bun:"content_type"`
	VersionAdded   int          `bun:"version_added"`
	VersionRemoved *int         `bun:"version_removed"`
}

// Change describes a new version: the units of the base version (the latest
// when Base is nil), plus Add, minus Remove. Units are named by Content.ID.
type Change struct {
	Add    []int64
	Remove []int64
	// Base, when set, is the number of the version to start from instead of
	// the latest.
	Base *int
}

// NewVersion creates the next version of a repository from a change, in one
// transaction; it costs O(len(Add)+len(Remove)) when Base is nil.
//
// Adding a tag replaces any tag of the same name: a tag name is unique
// within a version. A unit both added and removed is errdef.ErrInvalid; an id that
// is not a stored unit is errdef.ErrNotFound. When the result equals the latest
// version, no version is made and the error is ErrNoChange.
func (s *Store) NewVersion(ctx context.Context, repoID string, ch Change) (*Version, error) {
	var out *Version
	var changed int
	err := s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		v, n, err := tx.newVersion(ctx, repoID, ch)
		out, changed = v, n
		return err
	})
	if err != nil {
		return nil, err
	}
	s.analyzeAfter(ctx, "repository_contents", changed)
	return out, nil
}

// analyzeThreshold is how many rows one call must write before it refreshes
// PostgreSQL's planner statistics itself. Right after a bulk load, stale
// statistics make the planner pick an index that scans a whole repository
// where a point lookup was wanted; autovacuum would fix it, but later.
const analyzeThreshold = 5000

func (s *Store) analyzeAfter(ctx context.Context, table string, rows int) {
	if rows < analyzeThreshold || s.db.Dialect().Name() != dialect.PG {
		return
	}
	if _, ok := s.db.(*bun.DB); !ok {
		return // inside a caller's transaction: leave it to autovacuum
	}
	// Best effort: stale statistics only cost speed.
	_, _ = s.db.ExecContext(ctx, "ANALYZE "+table)
}

func (s *Store) newVersion(ctx context.Context, repoID string, ch Change) (*Version, int, error) {
	repo, err := s.lockRepository(ctx, repoID)
	if err != nil {
		return nil, 0, err
	}
	n := repo.NextVersion
	remove := uniq(ch.Remove)
	add := uniq(ch.Add)
	inRemove := make(map[int64]bool, len(remove))
	for _, id := range remove {
		inRemove[id] = true
	}
	for _, id := range add {
		if inRemove[id] {
			return nil, 0, errdef.New(errdef.ErrInvalid, "content %d is both added and removed", id)
		}
	}

	// Starting from another version: the difference to the latest becomes
	// part of the change. This path reads both versions in full.
	if ch.Base != nil && *ch.Base != repo.LatestVersion {
		if _, err := s.Version(ctx, repoID, *ch.Base); err != nil {
			return nil, 0, err
		}
		latest, err := s.memberIDs(ctx, repoID, repo.LatestVersion)
		if err != nil {
			return nil, 0, err
		}
		base, err := s.memberIDs(ctx, repoID, *ch.Base)
		if err != nil {
			return nil, 0, err
		}
		inAdd := make(map[int64]bool, len(add))
		for _, id := range add {
			inAdd[id] = true
		}
		for id := range latest {
			if !base[id] && !inAdd[id] && !inRemove[id] {
				remove = append(remove, id)
				inRemove[id] = true
			}
		}
		for id := range base {
			if !latest[id] && !inRemove[id] && !inAdd[id] {
				add = append(add, id)
				inAdd[id] = true
			}
		}
	}

	types, err := s.contentTypes(ctx, add)
	if err != nil {
		return nil, 0, err
	}
	// A tag name is unique within a version: adding a tag removes the live
	// tag of the same name.
	var names []string
	for _, id := range add {
		if t := types[id]; t.name != "" {
			names = append(names, t.name)
		}
	}
	if len(names) > 0 {
		seen := map[string]int64{}
		for _, id := range add {
			if t := types[id]; t.name != "" {
				if other, dup := seen[t.name]; dup {
					return nil, 0, errdef.New(errdef.ErrInvalid, "tag %q is added twice (contents %d and %d)", t.name, other, id)
				}
				seen[t.name] = id
			}
		}
		for start := 0; start < len(names); start += batch {
			var live []struct {
				ID   int64  `bun:"content_id"`
				Name string `bun:"name"`
			}
			err := s.db.NewSelect().Table("repository_contents").
				ColumnExpr("repository_contents.content_id, c.name").
				Join("JOIN contents AS c ON c.id = repository_contents.content_id").
				Where("repository_contents.repository_id = ? AND repository_contents.version_removed IS NULL", repoID).
				Where("repository_contents.content_type IN (?, ?)", content.TypeManifestTag, content.TypeManifestListTag).
				Where("c.name IN (?)", bun.In(names[start:min(start+batch, len(names))])).
				Scan(ctx, &live)
			if err != nil {
				return nil, 0, err
			}
			for _, l := range live {
				if seen[l.Name] != l.ID && !inRemove[l.ID] {
					remove = append(remove, l.ID)
					inRemove[l.ID] = true
				}
			}
		}
	}

	latestV, err := s.Version(ctx, repoID, repo.LatestVersion)
	if err != nil {
		return nil, 0, err
	}
	counts := newSummary()
	if latestV.Counts != nil {
		for t, k := range latestV.Counts.Present {
			counts.Present[t] = k
		}
	} else if counts.Present, err = s.countWhere(ctx, repoID, presentIn, repo.LatestVersion, repo.LatestVersion); err != nil {
		return nil, 0, err
	}

	changed := 0
	for start := 0; start < len(remove); start += batch {
		var gone []content.Type
		err := s.db.NewUpdate().Table("repository_contents").Set("version_removed = ?", n).
			Where("repository_id = ? AND version_removed IS NULL", repoID).
			Where("content_id IN (?)", bun.In(remove[start:min(start+batch, len(remove))])).
			Returning("content_type").
			Scan(ctx, &gone)
		if err != nil {
			return nil, 0, err
		}
		for _, t := range gone {
			counts.Removed[t]++
			counts.Present[t]--
		}
		changed += len(gone)
	}

	live, err := s.liveAmong(ctx, repoID, add)
	if err != nil {
		return nil, 0, err
	}
	rows := make([]membership, 0, len(add))
	for _, id := range add {
		if !live[id] {
			rows = append(rows, membership{RepositoryID: repoID, ContentID: id, ContentType: types[id].typ, VersionAdded: n})
		}
	}
	for start := 0; start < len(rows); start += batch {
		chunk := rows[start:min(start+batch, len(rows))]
		if _, err := s.db.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return nil, 0, err
		}
	}
	for _, r := range rows {
		counts.Added[r.ContentType]++
		counts.Present[r.ContentType]++
	}
	changed += len(rows)
	if changed == 0 {
		return nil, 0, fmt.Errorf("%w: repository %q already holds exactly that content", ErrNoChange, repo.Name)
	}

	counts.prune()
	v := &Version{ID: uuid.NewString(), RepositoryID: repoID, Number: n, BaseVersion: ch.Base, CreatedAt: time.Now().UTC(), Counts: counts}
	if _, err := s.db.NewInsert().Model(v).Exec(ctx); err != nil {
		return nil, 0, err
	}
	_, err = s.db.NewUpdate().Model((*Repository)(nil)).
		Set("latest_version = ?", n).Set("next_version = ?", n+1).
		Where("id = ?", repoID).Exec(ctx)
	if err != nil {
		return nil, 0, err
	}
	return v, changed, nil
}

type unitType struct {
	typ  content.Type
	name string
}

// contentTypes looks up the type and tag name of each id, failing with
// errdef.ErrNotFound for an id that is not stored.
func (s *Store) contentTypes(ctx context.Context, ids []int64) (map[int64]unitType, error) {
	out := make(map[int64]unitType, len(ids))
	for start := 0; start < len(ids); start += batch {
		var rows []struct {
			ID   int64        `bun:"id"`
			Type content.Type `bun:"type"`
			Name string       `bun:"name"`
		}
		chunk := ids[start:min(start+batch, len(ids))]
		err := s.db.NewSelect().Table("contents").Column("id", "type", "name").
			Where("id IN (?)", bun.In(chunk)).Scan(ctx, &rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.ID] = unitType{r.Type, r.Name}
		}
		for _, id := range chunk {
			if _, ok := out[id]; !ok {
				return nil, errdef.New(errdef.ErrNotFound, "content %d", id)
			}
		}
	}
	return out, nil
}

// liveAmong returns which of ids are in the latest version of a repository.
func (s *Store) liveAmong(ctx context.Context, repoID string, ids []int64) (map[int64]bool, error) {
	out := make(map[int64]bool)
	for start := 0; start < len(ids); start += batch {
		var live []int64
		err := s.db.NewSelect().Table("repository_contents").Column("content_id").
			Where("repository_id = ? AND version_removed IS NULL", repoID).
			Where("content_id IN (?)", bun.In(ids[start:min(start+batch, len(ids))])).
			Scan(ctx, &live)
		if err != nil {
			return nil, err
		}
		for _, id := range live {
			out[id] = true
		}
	}
	return out, nil
}

// memberIDs returns the ids of every unit in version n.
func (s *Store) memberIDs(ctx context.Context, repoID string, n int) (map[int64]bool, error) {
	var ids []int64
	err := s.db.NewSelect().Table("repository_contents").Column("content_id").
		Where("repository_id = ?", repoID).
		Where("version_added <= ? AND (version_removed IS NULL OR version_removed > ?)", n, n).
		Scan(ctx, &ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

func uniq(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Version returns version number n of a repository.
func (s *Store) Version(ctx context.Context, repoID string, n int) (*Version, error) {
	v := new(Version)
	if err := s.db.NewSelect().Model(v).Where("repository_id = ? AND number = ?", repoID, n).Scan(ctx); err != nil {
		return nil, notFound(err, "version %d of repository %q", n, repoID)
	}
	return v, nil
}

// VersionByID returns the version with the given id.
func (s *Store) VersionByID(ctx context.Context, id string) (*Version, error) {
	v := new(Version)
	if err := s.db.NewSelect().Model(v).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "repository version %q", id)
	}
	return v, nil
}

// LatestVersion returns the newest version of a repository.
func (s *Store) LatestVersion(ctx context.Context, repoID string) (*Version, error) {
	r, err := s.Repository(ctx, repoID)
	if err != nil {
		return nil, err
	}
	return s.Version(ctx, repoID, r.LatestVersion)
}

// ListVersions lists a repository's versions, newest first, with the total.
func (s *Store) ListVersions(ctx context.Context, repoID string, p Page) ([]Version, int, error) {
	p, err := p.norm()
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.Repository(ctx, repoID); err != nil {
		return nil, 0, err
	}
	var out []Version
	n, err := s.db.NewSelect().Model(&out).Where("repository_id = ?", repoID).
		Order("number DESC").Limit(int64(p.Limit)).Offset(int64(p.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, err
	}
	return out, int(n), nil
}

// DeleteVersion deletes version n. Its changes are folded into the next
// version, so every later version keeps exactly its content; deleting the
// latest version makes the one before it the latest. The only remaining
// version cannot be deleted (errdef.ErrConflict).
func (s *Store) DeleteVersion(ctx context.Context, repoID string, n int) error {
	return s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		repo, err := tx.lockRepository(ctx, repoID)
		if err != nil {
			return err
		}
		v, err := tx.Version(ctx, repoID, n)
		if err != nil {
			return err
		}
		var numbers []int
		if err := tx.db.NewSelect().Model((*Version)(nil)).Column("number").
			Where("repository_id = ?", repoID).Order("number").Scan(ctx, &numbers); err != nil {
			return err
		}
		if len(numbers) == 1 {
			return errdef.New(errdef.ErrConflict, "version %d is the only version of repository %q", n, repo.Name)
		}
		prev, next := -1, -1
		for _, k := range numbers {
			if k < n {
				prev = k
			}
			if k > n && next < 0 {
				next = k
			}
		}
		rc := func() *bun.UpdateQuery {
			return tx.db.NewUpdate().Table("repository_contents").Where("repository_id = ?", repoID)
		}
		if next < 0 {
			// The latest goes: undo its changes.
			if _, err := tx.db.NewDelete().Table("repository_contents").
				Where("repository_id = ? AND version_added = ?", repoID, n).Exec(ctx); err != nil {
				return err
			}
			if _, err := rc().Set("version_removed = NULL").Where("version_removed = ?", n).Exec(ctx); err != nil {
				return err
			}
			if _, err := tx.db.NewUpdate().Model((*Repository)(nil)).Set("latest_version = ?", prev).
				Where("id = ?", repoID).Exec(ctx); err != nil {
				return err
			}
		} else {
			// Removed in n and added back in next: the unit never left, so
			// the first row lives on until the second row's end.
			var pairs []struct {
				Old     int64 `bun:"old_id"`
				New     int64 `bun:"new_id"`
				Removed *int  `bun:"new_removed"`
			}
			err := tx.db.NewSelect().TableExpr("repository_contents AS a").
				Join("JOIN repository_contents AS b ON b.repository_id = a.repository_id AND b.content_id = a.content_id").
				ColumnExpr("a.id AS old_id, b.id AS new_id, b.version_removed AS new_removed").
				Where("a.repository_id = ? AND a.version_removed = ? AND b.version_added = ?", repoID, n, next).
				Scan(ctx, &pairs)
			if err != nil {
				return err
			}
			for _, p := range pairs {
				if _, err := tx.db.NewDelete().Table("repository_contents").Where("id = ?", p.New).Exec(ctx); err != nil {
					return err
				}
				if _, err := tx.db.NewUpdate().Table("repository_contents").Set("version_removed = ?", p.Removed).
					Where("id = ?", p.Old).Exec(ctx); err != nil {
					return err
				}
			}
			// Added in n and removed in next: never seen by any version left.
			if _, err := tx.db.NewDelete().Table("repository_contents").
				Where("repository_id = ? AND version_added = ? AND version_removed = ?", repoID, n, next).Exec(ctx); err != nil {
				return err
			}
			if _, err := rc().Set("version_added = ?", next).Where("version_added = ?", n).Exec(ctx); err != nil {
				return err
			}
			if _, err := rc().Set("version_removed = ?", next).Where("version_removed = ?", n).Exec(ctx); err != nil {
				return err
			}
			// The next version now carries n's changes too; what it holds
			// is unchanged.
			nv, err := tx.Version(ctx, repoID, next)
			if err != nil {
				return err
			}
			if nv.Counts == nil {
				nv.Counts = newSummary()
				if nv.Counts.Present, err = tx.countWhere(ctx, repoID, presentIn, next, next); err != nil {
					return err
				}
			}
			if nv.Counts.Added, err = tx.countWhere(ctx, repoID, "version_added = ?", next); err != nil {
				return err
			}
			if nv.Counts.Removed, err = tx.countWhere(ctx, repoID, "version_removed = ?", next); err != nil {
				return err
			}
			if _, err := tx.db.NewUpdate().Model(nv).Column("counts").WherePK().Exec(ctx); err != nil {
				return err
			}
		}
		_, err = tx.db.NewDelete().Model(v).WherePK().Exec(ctx)
		if db.IsForeignKeyViolation(err) {
			return errdef.New(errdef.ErrConflict, "version %d of repository %q is still referenced (a distribution serves it?)", n, repo.Name)
		}
		return err
	})
}
