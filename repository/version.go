package repository

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	// Need are units that must be in the latest version when the change is
	// applied, checked under the repository's lock: the children a pushed
	// manifest list was found to have a moment before. When one is not,
	// the change fails with ErrGone and nothing is written. Need is not
	// allowed with Base.
	Need []int64
	// Exact makes the new version hold exactly Add: every other unit of
	// the latest version is removed, read under the repository's lock, so
	// that what was added since the caller looked goes too (a mirror
	// sync). Exact is not allowed with Base or Remove.
	Exact bool
}

// NewVersion creates the next version of a repository from a change, in one
// transaction; it costs O(len(Add)+len(Remove)) when Base is nil.
//
// Adding a tag replaces any tag of the same name: a tag name is unique
// within a version. Removing a manifest or list removes the tags naming it. A unit both added and removed is errdef.ErrInvalid; an id that
// is not a stored unit is errdef.ErrNotFound. When the result equals the latest
// version, no version is made and the error is ErrNoChange.
//
// What the latest version already settles (units to add that it holds,
// units to remove that it does not) is read first, outside the
// transaction, so the repository stays locked for what changes only, and a
// change that changes nothing opens no transaction and writes nothing.
func (s *Store) NewVersion(ctx context.Context, repoID string, ch Change) (*Version, error) {
	nar, err := s.narrow(ctx, repoID, ch)
	if err != nil {
		return nil, err
	}
	var out *Version
	var changed int
	err = s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		v, n, err := tx.newVersion(ctx, repoID, ch, nar)
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

// newVersion makes the next version of a repository in the caller's
// transaction, in phases: lock the repository, resolve the change against
// the latest version, write the membership rows, then the version row with
// its summary. It returns the version and how many rows it wrote. When
// nar was narrowed against the version still the latest, its narrowed
// change is applied: the same outcome for less work.
func (s *Store) newVersion(ctx context.Context, repoID string, ch Change, nar *narrowed) (*Version, int, error) {
	repo, err := s.lockRepository(ctx, repoID)
	if err != nil {
		return nil, 0, err
	}
	if err := s.checkNeed(ctx, repo, ch); err != nil {
		return nil, 0, err
	}
	d, err := s.resolveChange(ctx, repo, nar.change(repo.LatestVersion, ch))
	if err != nil {
		return nil, 0, err
	}
	if err := s.untagRemoved(ctx, repo.ID, d); err != nil {
		return nil, 0, err
	}
	counts, err := s.latestCounts(ctx, repo)
	if err != nil {
		return nil, 0, err
	}
	removed, err := s.removeMembers(ctx, repoID, repo.NextVersion, d.remove, counts)
	if err != nil {
		return nil, 0, err
	}
	added, err := s.addMembers(ctx, repoID, repo.NextVersion, d, counts)
	if err != nil {
		return nil, 0, err
	}
	if removed+added == 0 {
		return nil, 0, fmt.Errorf("%w: repository %q already holds exactly that content", ErrNoChange, repo.Name)
	}
	v, err := s.writeVersion(ctx, repo, ch.Base, counts)
	if err != nil {
		return nil, 0, err
	}
	repo.LatestVersion, repo.NextVersion = v.Number, v.Number+1
	if _, err := s.retain(ctx, repo); err != nil {
		return nil, 0, err
	}
	return v, removed + added, nil
}

// delta is a change resolved against a repository's latest version: the
// units to add and to remove, each once, in the order first named, and the
// type and tag name of each unit to add.
type delta struct {
	add, remove     []int64
	inAdd, inRemove map[int64]bool
	types           map[int64]unitType
}

func (d *delta) addUnit(id int64) {
	if !d.inAdd[id] {
		d.add = append(d.add, id)
		d.inAdd[id] = true
	}
}

func (d *delta) removeUnit(id int64) {
	if !d.inRemove[id] {
		d.remove = append(d.remove, id)
		d.inRemove[id] = true
	}
}

// resolveChange turns ch into what the next version of repo adds and
// removes relative to the latest: ch's own units, the difference to the
// latest when ch starts from another version, and the live tags that added
// tags of the same name replace.
func (s *Store) resolveChange(ctx context.Context, repo *Repository, ch Change) (*delta, error) {
	d := &delta{inAdd: make(map[int64]bool, len(ch.Add)), inRemove: make(map[int64]bool, len(ch.Remove))}
	for _, id := range ch.Remove {
		d.removeUnit(id)
	}
	for _, id := range ch.Add {
		if d.inRemove[id] {
			return nil, errdef.New(errdef.ErrInvalid, "content %d is both added and removed", id)
		}
		d.addUnit(id)
	}
	if ch.Base != nil && *ch.Base != repo.LatestVersion {
		if err := s.rebase(ctx, repo, *ch.Base, d); err != nil {
			return nil, err
		}
	}
	if ch.Exact {
		if ch.Base != nil || len(ch.Remove) > 0 {
			return nil, errdef.New(errdef.ErrInvalid, "an exact change neither starts from another version nor removes")
		}
		live, err := s.memberIDs(ctx, repo.ID, repo.LatestVersion)
		if err != nil {
			return nil, err
		}
		for id := range live {
			if !d.inAdd[id] {
				d.removeUnit(id)
			}
		}
	}
	var err error
	if d.types, err = s.contentTypes(ctx, d.add); err != nil {
		return nil, err
	}
	if err := s.replaceTags(ctx, repo.ID, d); err != nil {
		return nil, err
	}
	return d, nil
}

// rebase makes d start from version base instead of the latest: what the
// latest holds and base does not is removed, and the reverse added, unless
// the change itself says otherwise. It reads both versions in full.
func (s *Store) rebase(ctx context.Context, repo *Repository, base int, d *delta) error {
	if _, err := s.Version(ctx, repo.ID, base); err != nil {
		return err
	}
	latest, err := s.memberIDs(ctx, repo.ID, repo.LatestVersion)
	if err != nil {
		return err
	}
	inBase, err := s.memberIDs(ctx, repo.ID, base)
	if err != nil {
		return err
	}
	for id := range latest {
		if !inBase[id] && !d.inAdd[id] {
			d.removeUnit(id)
		}
	}
	for id := range inBase {
		if !latest[id] && !d.inRemove[id] {
			d.addUnit(id)
		}
	}
	return nil
}

// checkNeed is ErrGone when a unit of ch.Need is not in repo's latest
// version; the caller holds repo's lock.
func (s *Store) checkNeed(ctx context.Context, repo *Repository, ch Change) error {
	if len(ch.Need) == 0 {
		return nil
	}
	if ch.Base != nil {
		return errdef.New(errdef.ErrInvalid, "a change that needs units cannot start from another version")
	}
	live, err := s.liveAmong(ctx, repo.ID, ch.Need)
	if err != nil {
		return err
	}
	for _, id := range ch.Need {
		if !live[id] {
			c, err := s.ContentByID(ctx, id)
			if err != nil {
				return fmt.Errorf("%w: content %d", ErrGone, id)
			}
			return fmt.Errorf("%w: %s %s is no longer in repository %q", ErrGone, c.Type, c.Digest, repo.Name)
		}
	}
	return nil
}

// untagRemoved removes the live tags naming a manifest or list that d
// removes and does not add back: no version holds a tag whose manifest it
// lacks, whoever tagged it while the change was being prepared.
func (s *Store) untagRemoved(ctx context.Context, repoID string, d *delta) error {
	if len(d.remove) == 0 {
		return nil
	}
	for chunk := range slices.Chunk(d.remove, batch) {
		tags, err := s.liveTags(ctx, repoID, "c.tagged_id IN (?)", bun.In(chunk))
		if err != nil {
			return err
		}
		for _, t := range tags {
			if !d.inAdd[t.ID] {
				d.removeUnit(t.ID)
			}
		}
	}
	return nil
}

// liveTag is a tag unit of a repository's latest version.
type liveTag struct {
	ID   int64  `bun:"content_id"`
	Name string `bun:"name"`
}

// liveTags returns the tags of repository repoID's latest version that
// match where, a condition on their unit (contents AS c).
func (s *Store) liveTags(ctx context.Context, repoID, where string, args ...any) ([]liveTag, error) {
	var out []liveTag
	err := s.db.NewSelect().TableExpr("repository_contents AS rc").
		ColumnExpr("rc.content_id, c.name").
		Join("JOIN contents AS c ON c.id = rc.content_id").
		Where("rc.repository_id = ? AND rc.version_removed IS NULL", repoID).
		Where("rc.content_type IN (?, ?)", content.TypeManifestTag, content.TypeManifestListTag).
		Where(where, args...).
		Scan(ctx, &out)
	return out, err
}

// replaceTags removes the live tags that the added tags replace: a tag
// name is unique within a version. Two added tags of one name are
// errdef.ErrInvalid.
func (s *Store) replaceTags(ctx context.Context, repoID string, d *delta) error {
	byName := map[string]int64{}
	var names []string
	for _, id := range d.add {
		name := d.types[id].name
		if name == "" {
			continue
		}
		if other, dup := byName[name]; dup {
			return errdef.New(errdef.ErrInvalid, "tag %q is added twice (contents %d and %d)", name, other, id)
		}
		byName[name] = id
		names = append(names, name)
	}
	for chunk := range slices.Chunk(names, batch) {
		live, err := s.liveTags(ctx, repoID, "c.name IN (?)", bun.In(chunk))
		if err != nil {
			return err
		}
		for _, l := range live {
			if byName[l.Name] != l.ID {
				d.removeUnit(l.ID)
			}
		}
	}
	return nil
}

// latestCounts returns a summary to build the next version's on: nothing
// added or removed yet, and present what the latest version holds.
func (s *Store) latestCounts(ctx context.Context, repo *Repository) (*Summary, error) {
	latest, err := s.Version(ctx, repo.ID, repo.LatestVersion)
	if err != nil {
		return nil, err
	}
	counts := newSummary()
	if latest.Counts != nil {
		maps.Copy(counts.Present, latest.Counts.Present)
		return counts, nil
	}
	// A version made before summaries were stored.
	counts.Present, err = s.countWhere(ctx, repo.ID, presentIn, repo.LatestVersion, repo.LatestVersion)
	return counts, err
}

// removeMembers ends the live membership of ids at version n, counting
// what it ends in counts, and returns how many rows it changed.
func (s *Store) removeMembers(ctx context.Context, repoID string, n int, ids []int64, counts *Summary) (int, error) {
	removed := 0
	for chunk := range slices.Chunk(ids, batch) {
		var gone []content.Type
		err := s.db.NewUpdate().Table("repository_contents").Set("version_removed = ?", n).
			Where("repository_id = ? AND version_removed IS NULL", repoID).
			Where("content_id IN (?)", bun.In(chunk)).
			Returning("content_type").
			Scan(ctx, &gone)
		if err != nil {
			return 0, err
		}
		for _, t := range gone {
			counts.Removed[t]++
			counts.Present[t]--
		}
		removed += len(gone)
	}
	return removed, nil
}

// addMembers writes a membership row from version n for each unit of
// d.add not already live, counting them in counts, and returns how many
// rows it wrote.
func (s *Store) addMembers(ctx context.Context, repoID string, n int, d *delta, counts *Summary) (int, error) {
	live, err := s.liveAmong(ctx, repoID, d.add)
	if err != nil {
		return 0, err
	}
	rows := make([]membership, 0, len(d.add))
	for _, id := range d.add {
		if !live[id] {
			rows = append(rows, membership{RepositoryID: repoID, ContentID: id, ContentType: d.types[id].typ, VersionAdded: n})
		}
	}
	for chunk := range slices.Chunk(rows, batch) {
		if _, err := s.db.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return 0, err
		}
	}
	for _, r := range rows {
		counts.Added[r.ContentType]++
		counts.Present[r.ContentType]++
	}
	return len(rows), nil
}

// writeVersion stores version repo.NextVersion with its summary and makes
// it the repository's latest.
func (s *Store) writeVersion(ctx context.Context, repo *Repository, base *int, counts *Summary) (*Version, error) {
	counts.prune()
	n := repo.NextVersion
	v := &Version{ID: uuid.NewString(), RepositoryID: repo.ID, Number: n, BaseVersion: base, CreatedAt: time.Now().UTC(), Counts: counts}
	if _, err := s.db.NewInsert().Model(v).Exec(ctx); err != nil {
		return nil, err
	}
	_, err := s.db.NewUpdate().Model((*Repository)(nil)).
		Set("latest_version = ?", n).Set("next_version = ?", n+1).
		Where("id = ?", repo.ID).Exec(ctx)
	if err != nil {
		return nil, err
	}
	return v, nil
}

type unitType struct {
	typ  content.Type
	name string
}

// contentTypes looks up the type and tag name of each id, failing with
// errdef.ErrNotFound for an id that is not stored.
func (s *Store) contentTypes(ctx context.Context, ids []int64) (map[int64]unitType, error) {
	out := make(map[int64]unitType, len(ids))
	for chunk := range slices.Chunk(ids, batch) {
		var rows []struct {
			ID   int64        `bun:"id"`
			Type content.Type `bun:"type"`
			Name string       `bun:"name"`
		}
		q := s.db.NewSelect().Table("contents").Column("id", "type", "name").
			Where("id IN (?)", bun.In(chunk))
		if s.db.Dialect().Name() == dialect.PG {
			// Held until the version commits: orphan cleanup, which
			// deletes units no version holds, skips or waits for these
			// rather than deleting one a moment before it is added.
			q = q.For("KEY SHARE")
		}
		err := q.Scan(ctx, &rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.ID] = unitType{r.Type, r.Name}
		}
		for _, id := range chunk {
			if _, ok := out[id]; !ok {
				return nil, errdef.New(errdef.ErrNotFound, "content %d not found", id)
			}
		}
	}
	return out, nil
}

// liveAmong returns which of ids are in the latest version of a repository.
func (s *Store) liveAmong(ctx context.Context, repoID string, ids []int64) (map[int64]bool, error) {
	out := make(map[int64]bool)
	for chunk := range slices.Chunk(ids, batch) {
		var live []int64
		err := s.db.NewSelect().Table("repository_contents").Column("content_id").
			Where("repository_id = ? AND version_removed IS NULL", repoID).
			Where("content_id IN (?)", bun.In(chunk)).
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
		Where(presentIn, n, n).
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
// latest version makes the one before it the latest.
//
// It is errdef.ErrConflict, naming what is in the way, to delete the only
// remaining version or a version something pins (a distribution serving
// that version: see Holders). The latest version of a repository that
// something follows may go: the followers then serve the version before.
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
		if err := tx.refuseServedVersion(ctx, repo, v); err != nil {
			return err
		}
		return tx.deleteVersion(ctx, repo, v)
	})
}

// deleteVersion deletes version v of repo, locked by the caller, folding
// its changes into the version after it.
func (s *Store) deleteVersion(ctx context.Context, repo *Repository, v *Version) error {
	repoID, n := repo.ID, v.Number
	prev, next, err := s.neighbours(ctx, repo, n)
	if err != nil {
		return err
	}
	if next < 0 {
		err = s.undoLatest(ctx, repoID, n, prev)
	} else {
		err = s.foldInto(ctx, repoID, n, next)
	}
	if err != nil {
		return err
	}
	_, err = s.db.NewDelete().Model(v).WherePK().Exec(ctx)
	if db.IsForeignKeyViolation(err) {
		return errdef.New(errdef.ErrConflict, "version %d of repository %q is still referenced by another object", n, repo.Name)
	}
	return err
}

// neighbours returns the numbers of the versions of repo just before and
// just after n, -1 where there is none. When n is the only version, it is
// errdef.ErrConflict.
func (s *Store) neighbours(ctx context.Context, repo *Repository, n int) (prev, next int, err error) {
	var numbers []int
	if err := s.db.NewSelect().Model((*Version)(nil)).Column("number").
		Where("repository_id = ?", repo.ID).Order("number").Scan(ctx, &numbers); err != nil {
		return 0, 0, err
	}
	if len(numbers) == 1 {
		return 0, 0, errdef.New(errdef.ErrConflict, "version %d is the only version of repository %q", n, repo.Name)
	}
	prev, next = -1, -1
	for _, k := range numbers {
		if k < n {
			prev = k
		}
		if k > n && next < 0 {
			next = k
		}
	}
	return prev, next, nil
}

// undoLatest takes back the changes of version n, the latest, and makes
// version prev the latest.
func (s *Store) undoLatest(ctx context.Context, repoID string, n, prev int) error {
	if _, err := s.db.NewDelete().Table("repository_contents").
		Where("repository_id = ? AND version_added = ?", repoID, n).Exec(ctx); err != nil {
		return err
	}
	if _, err := s.db.NewUpdate().Table("repository_contents").Set("version_removed = NULL").
		Where("repository_id = ? AND version_removed = ?", repoID, n).Exec(ctx); err != nil {
		return err
	}
	_, err := s.db.NewUpdate().Model((*Repository)(nil)).Set("latest_version = ?", prev).
		Where("id = ?", repoID).Exec(ctx)
	return err
}

// foldInto moves the changes of version n into version next, the one
// after it, so that next holds exactly what it held, and brings next's
// summary up to date.
func (s *Store) foldInto(ctx context.Context, repoID string, n, next int) error {
	if err := s.joinReadded(ctx, repoID, n, next); err != nil {
		return err
	}
	// Added in n and removed in next: never seen by any version left.
	if _, err := s.db.NewDelete().Table("repository_contents").
		Where("repository_id = ? AND version_added = ? AND version_removed = ?", repoID, n, next).Exec(ctx); err != nil {
		return err
	}
	rc := func() *bun.UpdateQuery {
		return s.db.NewUpdate().Table("repository_contents").Where("repository_id = ?", repoID)
	}
	if _, err := rc().Set("version_added = ?", next).Where("version_added = ?", n).Exec(ctx); err != nil {
		return err
	}
	if _, err := rc().Set("version_removed = ?", next).Where("version_removed = ?", n).Exec(ctx); err != nil {
		return err
	}
	return s.recountChanges(ctx, repoID, next)
}

// joinReadded merges the two rows of each unit removed in version n and
// added back in next: the unit never left, so the first row lives on until
// the second row's end.
func (s *Store) joinReadded(ctx context.Context, repoID string, n, next int) error {
	var pairs []struct {
		Old     int64 `bun:"old_id"`
		New     int64 `bun:"new_id"`
		Removed *int  `bun:"new_removed"`
	}
	err := s.db.NewSelect().TableExpr("repository_contents AS a").
		Join("JOIN repository_contents AS b ON b.repository_id = a.repository_id AND b.content_id = a.content_id").
		ColumnExpr("a.id AS old_id, b.id AS new_id, b.version_removed AS new_removed").
		Where("a.repository_id = ? AND a.version_removed = ? AND b.version_added = ?", repoID, n, next).
		Scan(ctx, &pairs)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		if _, err := s.db.NewDelete().Table("repository_contents").Where("id = ?", p.New).Exec(ctx); err != nil {
			return err
		}
		if _, err := s.db.NewUpdate().Table("repository_contents").Set("version_removed = ?", p.Removed).
			Where("id = ?", p.Old).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// recountChanges rewrites the added and removed counts of version next,
// which now carries the changes of the version deleted before it too;
// what it holds is unchanged.
func (s *Store) recountChanges(ctx context.Context, repoID string, next int) error {
	nv, err := s.Version(ctx, repoID, next)
	if err != nil {
		return err
	}
	if nv.Counts == nil {
		nv.Counts = newSummary()
		if nv.Counts.Present, err = s.countWhere(ctx, repoID, presentIn, next, next); err != nil {
			return err
		}
	}
	if nv.Counts.Added, err = s.countWhere(ctx, repoID, "version_added = ?", next); err != nil {
		return err
	}
	if nv.Counts.Removed, err = s.countWhere(ctx, repoID, "version_removed = ?", next); err != nil {
		return err
	}
	_, err = s.db.NewUpdate().Model(nv).Column("counts").WherePK().Exec(ctx)
	return err
}
