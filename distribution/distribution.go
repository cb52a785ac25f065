// Package distribution maps base paths to what they serve: the latest
// version of a repository, followed as new versions appear, or one pinned
// repository version. Store keeps distributions; Registry is the read-only
// view the registry (pull) API serves from, with caches that keep a
// manifest GET to a map lookup.
package distribution

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/repository"
)

// Errors returned by this package wrap errdef's sentinels with the name,
// path or digest that failed: errdef.ErrNotFound (no distribution has the
// id), errdef.ErrConflict (the change would break a rule that involves
// other rows), an *errdef.FieldError (a field is malformed or taken), and
// for the registry view errdef.ErrNameUnknown, errdef.ErrManifestUnknown
// and errdef.ErrBlobUnknown.

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates the distributions table, after the
// repository tables it refers to. It is idempotent.
func Migrate(ctx context.Context, d *bun.DB) error {
	if err := repository.Migrate(ctx, d); err != nil {
		return err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, d, db.Migrations{Set: "distribution", FS: sub})
}

// Distribution serves one repository, or one version of it, at a base path.
// Exactly one of RepositoryID and RepositoryVersionID is set.
type Distribution struct {
	bun.BaseModel `bun:"table:distributions"`

	// ID is assigned by Create.
	ID string `bun:"id,pk"`
	// Name is unique among distributions.
	Name string `bun:"name"`
	// BasePath is what clients pull (<host>/<base path>): a repository name
	// of the distribution spec, unique, and neither a prefix of another
	// base path at a '/' nor under one.
	BasePath string `bun:"base_path"`
	// RepositoryID, when set, serves the repository's latest version.
	RepositoryID *string `bun:"repository_id"`
	// RepositoryVersionID, when set, serves that version only.
	RepositoryVersionID *string `bun:"repository_version_id"`
	// PullThroughID, when set, is the pull-through distribution that made
	// this one on the first pull of its base path (under the pull-through
	// base path); RemoteID is then the remote its content is fetched
	// through. Create keeps them; Update does not change them.
	PullThroughID *string `bun:"pull_through_id"`
	RemoteID      *string `bun:"remote_id"`
	// Private distributions are pulled only by users with a role that lets
	// them (consumer or better); public ones by anybody. Default false.
	Private bool `bun:"private"`
	// CreatedAt is set by Create.
	CreatedAt time.Time `bun:"created_at"`
}

// Filter selects distributions in List. Zero fields do not filter.
type Filter struct {
	Name     string
	BasePath string
	// IDs, when not nil, keeps only these distributions (none when empty).
	IDs []string
	repository.Page
}

// Store reads and writes distributions.
type Store struct {
	db bun.IDB
	// gen counts writes made through this Store, so a Registry built on it
	// drops its base-path cache at once instead of waiting for the TTL.
	gen *atomic.Int64
}

// NewStore returns a Store on db, a *bun.DB or a bun.Tx.
func NewStore(db bun.IDB) *Store { return &Store{db: db, gen: new(atomic.Int64)} }

func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx *Store) error) error {
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if tx.Dialect().Name() == dialect.PG {
			// Base-path prefix checks read other rows: serialise writers.
			if _, err := tx.ExecContext(ctx, "LOCK TABLE distributions IN SHARE ROW EXCLUSIVE MODE"); err != nil {
				return err
			}
		}
		return fn(ctx, &Store{db: tx, gen: s.gen})
	})
	s.gen.Add(1)
	return err
}

// Get returns the distribution with the given id.
func (s *Store) Get(ctx context.Context, id string) (*Distribution, error) {
	if uuid.Validate(id) != nil {
		return nil, errdef.New(errdef.ErrNotFound, "distribution %q not found", id)
	}
	d := new(Distribution)
	if err := s.db.NewSelect().Model(d).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, errdef.ErrNotFound, "distribution %q not found", id)
	}
	return d, nil
}

// ByBasePath returns the distribution serving basePath, or errdef.ErrNameUnknown.
func (s *Store) ByBasePath(ctx context.Context, basePath string) (*Distribution, error) {
	d := new(Distribution)
	if err := s.db.NewSelect().Model(d).Where("base_path = ?", basePath).Scan(ctx); err != nil {
		return nil, notFound(err, errdef.ErrNameUnknown, "%s", basePath)
	}
	return d, nil
}

// List lists distributions by name, with the total matching f.
func (s *Store) List(ctx context.Context, f Filter) ([]Distribution, int, error) {
	limit, offset, err := page(f.Page)
	if err != nil {
		return nil, 0, err
	}
	var out []Distribution
	q := s.db.NewSelect().Model(&out).Order("name").Limit(int64(limit)).Offset(int64(offset))
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.BasePath != "" {
		q = q.Where("base_path = ?", f.BasePath)
	}
	if f.IDs != nil {
		if len(f.IDs) == 0 {
			return []Distribution{}, 0, nil
		}
		q = q.Where("id IN (?)", bun.In(f.IDs))
	}
	n, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, err
	}
	return out, int(n), nil
}

// BasePaths lists up to n base paths in lexical order, starting after last;
// it is the registry catalog.
func (s *Store) BasePaths(ctx context.Context, n int, last string) ([]string, error) {
	out := []string{} // an empty catalog is [], not null
	q := s.db.NewSelect().Model((*Distribution)(nil)).Column("base_path").Order("base_path").Limit(int64(n))
	if last != "" {
		q = q.Where("base_path > ?", last)
	}
	err := q.Scan(ctx, &out)
	return out, err
}

func page(p repository.Page) (limit, offset int, err error) {
	if p.Limit < 0 || p.Offset < 0 {
		return 0, 0, errdef.Field("limit", "limit and offset must not be negative")
	}
	if p.Limit == 0 {
		p.Limit = repository.DefaultLimit
	}
	return min(p.Limit, repository.MaxLimit), p.Offset, nil
}

// Create stores a new distribution; it fills in ID and CreatedAt.
func (s *Store) Create(ctx context.Context, d *Distribution) error {
	d.ID = uuid.NewString()
	d.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		if err := tx.check(ctx, d); err != nil {
			return err
		}
		_, err := tx.db.NewInsert().Model(d).Exec(ctx)
		return tx.writeErr(err, d)
	})
}

// Update replaces a distribution's name, base path and what it serves.
func (s *Store) Update(ctx context.Context, d *Distribution) error {
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		old, err := tx.Get(ctx, d.ID)
		if err != nil {
			return err
		}
		d.PullThroughID, d.RemoteID = old.PullThroughID, old.RemoteID
		if err := tx.check(ctx, d); err != nil {
			return err
		}
		_, err = tx.db.NewUpdate().Model(d).Column("name", "base_path", "repository_id", "repository_version_id", "private").
			WherePK().Exec(ctx)
		return tx.writeErr(err, d)
	})
}

// Delete deletes a distribution. What it served stays.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		if _, err := tx.Get(ctx, id); err != nil {
			return err
		}
		_, err := tx.db.NewDelete().Model((*Distribution)(nil)).Where("id = ?", id).Exec(ctx)
		return err
	})
}

// check validates d against the rules that need no other row, then the
// base-path and reference rules that do.
func (s *Store) check(ctx context.Context, d *Distribution) error {
	if strings.TrimSpace(d.Name) == "" {
		return errdef.Field("name", "This field may not be blank.")
	}
	if len(d.Name) > 255 {
		return errdef.Field("name", "Ensure this field has no more than 255 characters.")
	}
	if err := content.ValidateRepositoryName(d.BasePath); err != nil {
		// Clients pull <host>/<base_path>, so it must be a repository name;
		// the error says which rule it breaks.
		return errdef.Field("base_path", "%v", err)
	}
	switch {
	case d.RepositoryID != nil && d.RepositoryVersionID != nil:
		return errdef.Field("repository", "Only one of the attributes 'repository' and 'repository_version' may be used simultaneously.")
	case d.RepositoryID == nil && d.RepositoryVersionID == nil:
		return errdef.Field("repository", "One of the attributes 'repository' and 'repository_version' must be set.")
	case d.RepositoryID != nil:
		if _, err := repository.NewStore(s.db).Repository(ctx, *d.RepositoryID); err != nil {
			if errors.Is(err, errdef.ErrNotFound) {
				return errdef.Field("repository", "Invalid hyperlink - Object does not exist.")
			}
			return err
		}
	default:
		if _, err := repository.NewStore(s.db).VersionByID(ctx, *d.RepositoryVersionID); err != nil {
			if errors.Is(err, errdef.ErrNotFound) {
				return errdef.Field("repository_version", "Invalid hyperlink - Object does not exist.")
			}
			return err
		}
	}
	var clash []string
	q := s.db.NewSelect().Model((*Distribution)(nil)).Column("base_path").
		Where("id <> ?", d.ID).
		WhereGroup(" AND ", overlapping(d.BasePath))
	if d.PullThroughID != nil {
		// What one pull-through cache makes may nest: upstream
		// repositories "a" and "a/b" are both served under it.
		q = q.Where("(pull_through_id IS NULL OR pull_through_id <> ?)", *d.PullThroughID)
	}
	err := q.Order("base_path").Limit(1).Scan(ctx, &clash)
	if err != nil {
		return err
	}
	if err := s.checkUnderPullThrough(ctx, d); err != nil {
		return err
	}
	if len(clash) > 0 {
		if clash[0] == d.BasePath {
			return &errdef.FieldError{Field: "base_path", Message: "distribution with this base path already exists.", Kind: errdef.ErrConflict}
		}
		return &errdef.FieldError{Field: "base_path", Kind: errdef.ErrConflict,
			Message: fmt.Sprintf("Overlaps with existing distribution base path %q: no base path may be a prefix of another.", clash[0])}
	}
	return nil
}

// overlapping selects the base paths that are p, one of its ancestors, or
// under it.
func overlapping(p string) func(q *bun.SelectQuery) *bun.SelectQuery {
	return func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("base_path IN (?)", bun.In(ancestors(p))).
			WhereOr("base_path LIKE ? ESCAPE '\\'", likeEscape(p)+"/%")
	}
}

// ancestors returns p and every prefix of it that ends at a '/'.
func ancestors(p string) []string {
	out := []string{p}
	for i := range len(p) {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

func (s *Store) writeErr(err error, d *Distribution) error {
	if db.IsUniqueViolation(err) {
		if strings.Contains(err.Error(), "base_path") {
			return &errdef.FieldError{Field: "base_path", Message: "distribution with this base path already exists.", Kind: errdef.ErrConflict}
		}
		return &errdef.FieldError{Field: "name", Message: "distribution with this name already exists.", Kind: errdef.ErrConflict}
	}
	if db.IsForeignKeyViolation(err) {
		return errdef.Field("repository", "Invalid hyperlink - Object does not exist.")
	}
	return err
}

// DeleteVersion deletes a repository version (see
// repository.Store.DeleteVersion). A version a distribution pins is
// refused with errdef.ErrConflict naming the distributions: the repository
// package finds them through the view this package's migrations define,
// so repository.Store.DeleteVersion refuses it too. Deleting the latest
// version of a repository a distribution follows rolls the distribution
// back to the version before.
func (s *Store) DeleteVersion(ctx context.Context, repoID string, n int) error {
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		return repository.NewStore(tx.db).DeleteVersion(ctx, repoID, n)
	})
}

// DeleteRepository deletes a repository (see
// repository.Store.DeleteRepository). A repository a distribution serves,
// or one of whose versions a distribution pins, is refused with
// errdef.ErrConflict naming the distributions, as by
// repository.Store.DeleteRepository.
func (s *Store) DeleteRepository(ctx context.Context, repoID string) error {
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		return repository.NewStore(tx.db).DeleteRepository(ctx, repoID)
	})
}

// notFound turns "no rows" into an error of kind (errdef.ErrNotFound or a
// registry code) with the message format and args.
func notFound(err, kind error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errdef.New(kind, format, args...)
	}
	return err
}
