// Package repository stores repositories and their immutable versions.
//
// Content units (blobs, manifests, manifest lists, tags) are stored once,
// globally, and shared by every repository that holds them. A repository
// version is the set of units present at that version; membership is kept
// as rows (repository, content, version_added, version_removed), as Pulp
// does, so creating a version costs O(changes), not O(repository size).
//
// Every call takes a context first and works inside or outside a
// transaction (Store wraps a bun.IDB).
package repository

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
)

// Errors returned by this package wrap errdef's sentinels (ErrNotFound,
// ErrConflict, ErrInvalid) with the name or id that failed.
var (
	// ErrNoChange is returned by NewVersion when the change would leave the
	// content exactly as in the latest version; no version is created.
	ErrNoChange = errors.New("no change")
	// ErrGone is returned by NewVersion when a unit the change needs
	// (Change.Need) is no longer in the latest version; it wraps
	// errdef.ErrConflict.
	ErrGone = fmt.Errorf("%w: needed content was removed meanwhile", errdef.ErrConflict)
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates the tables of this package. It is idempotent
// and safe to call from several processes at once.
func Migrate(ctx context.Context, d *bun.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, d, db.Migrations{Set: "repository", FS: sub})
}

// Open opens the metadata database named by dsn and migrates this
// package's tables:
//   - "postgres://…" or "postgresql://…": PostgreSQL;
//   - a file path, "file:PATH" or "sqlite://PATH": SQLite (pure Go, no cgo,
//     WAL mode), the file and its directory created if missing.
//
// Programs that open bun themselves call Migrate instead.
func Open(ctx context.Context, dsn string) (*bun.DB, error) {
	d, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, d); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Store reads and writes repositories, versions and content.
type Store struct {
	db bun.IDB
}

// NewStore returns a Store on db, which may be a *bun.DB or a bun.Tx.
func NewStore(db bun.IDB) *Store { return &Store{db: db} }

// DB returns the handle the Store works on.
func (s *Store) DB() bun.IDB { return s.db }

// InTx runs fn with a Store bound to one transaction, committed when fn
// returns nil and rolled back otherwise.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx *Store) error) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return fn(ctx, &Store{db: tx})
	})
}

// Repository is a named collection of versions.
type Repository struct {
	bun.BaseModel `bun:"table:repositories"`

	ID          string `bun:"id,pk" json:"id"`
	Name        string `bun:"name" json:"name"`
	Description string `bun:"description" json:"description"`
	// LatestVersion is the number of the newest version.
	LatestVersion int `bun:"latest_version" json:"latest_version"`
	// NextVersion is the number the next version will get; numbers are never
	// reused, even after a version is deleted.
	NextVersion int       `bun:"next_version" json:"-"`
	CreatedAt   time.Time `bun:"created_at" json:"created_at"`
	// RetainVersions is how many of its newest versions the repository
	// keeps (Pulp's retain_repo_versions); 0 keeps them all. See
	// RepositoryUpdate.RetainVersions.
	RetainVersions int `bun:"retain_versions,nullzero" json:"retain_repo_versions,omitempty"`
}

// Version is one immutable state of a repository.
type Version struct {
	bun.BaseModel `bun:"table:repository_versions"`

	ID           string    `bun:"id,pk" json:"id"`
	RepositoryID string    `bun:"repository_id" json:"repository_id"`
	Number       int       `bun:"number" json:"number"`
	BaseVersion  *int      `bun:"base_version" json:"base_version"`
	CreatedAt    time.Time `bun:"created_at" json:"created_at"`
	// counts is the content summary, written with the version.
	Counts *Summary `bun:"counts" json:"-"`
}

// Page limits a listing. Limit <= 0 means DefaultLimit; Limit is capped at
// MaxLimit.
type Page struct {
	Limit  int
	Offset int
}

// Listing limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func (p Page) norm() (Page, error) {
	if p.Offset < 0 {
		return p, errdef.New(errdef.ErrInvalid, "offset %d is negative", p.Offset)
	}
	if p.Limit < 0 {
		return p, errdef.New(errdef.ErrInvalid, "limit %d is negative", p.Limit)
	}
	if p.Limit == 0 {
		p.Limit = DefaultLimit
	}
	if p.Limit > MaxLimit {
		p.Limit = MaxLimit
	}
	return p, nil
}

// RepositoryFilter selects repositories in ListRepositories.
type RepositoryFilter struct {
	Name string // exact name; "" for any
	// IDs, when not nil, keeps only these repositories (none when empty).
	IDs []string
	Page
}

// CreateRepository creates a repository with an empty version 0.
// A name already taken gives errdef.ErrConflict.
func (s *Store) CreateRepository(ctx context.Context, name, description string) (*Repository, error) {
	return s.CreateRepositoryWith(ctx, RepositorySpec{Name: name, Description: description})
}

// RepositorySpec describes a repository to create.
type RepositorySpec struct {
	Name        string
	Description string
	// RetainVersions: see Repository.RetainVersions; 0 keeps every version.
	RetainVersions int
}

// CreateRepositoryWith creates a repository as spec says, with an empty
// version 0. A name already taken gives errdef.ErrConflict; a negative
// RetainVersions is an *errdef.FieldError about "retain_repo_versions".
func (s *Store) CreateRepositoryWith(ctx context.Context, spec RepositorySpec) (*Repository, error) {
	name := spec.Name
	if strings.TrimSpace(name) == "" {
		return nil, errdef.New(errdef.ErrInvalid, "repository name is empty")
	}
	if len(name) > 255 {
		return nil, errdef.New(errdef.ErrInvalid, "repository name is longer than 255 characters")
	}
	if err := checkRetain(spec.RetainVersions); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	r := &Repository{ID: uuid.NewString(), Name: name, Description: spec.Description, NextVersion: 1, CreatedAt: now, RetainVersions: spec.RetainVersions}
	err := s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		if _, err := tx.db.NewInsert().Model(r).Exec(ctx); err != nil {
			if db.IsUniqueViolation(err) {
				return errdef.New(errdef.ErrConflict, "a repository named %q already exists", name)
			}
			return err
		}
		v := &Version{ID: uuid.NewString(), RepositoryID: r.ID, Number: 0, CreatedAt: now, Counts: newSummary()}
		_, err := tx.db.NewInsert().Model(v).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Repository returns the repository with the given id.
func (s *Store) Repository(ctx context.Context, id string) (*Repository, error) {
	r := new(Repository)
	if err := s.db.NewSelect().Model(r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "repository %q", id)
	}
	return r, nil
}

// RepositoryByName returns the repository with the given name.
func (s *Store) RepositoryByName(ctx context.Context, name string) (*Repository, error) {
	r := new(Repository)
	if err := s.db.NewSelect().Model(r).Where("name = ?", name).Scan(ctx); err != nil {
		return nil, notFound(err, "repository named %q", name)
	}
	return r, nil
}

// ListRepositories lists repositories by name, with the total count of
// those matching the filter.
func (s *Store) ListRepositories(ctx context.Context, f RepositoryFilter) ([]Repository, int, error) {
	p, err := f.Page.norm()
	if err != nil {
		return nil, 0, err
	}
	var out []Repository
	q := s.db.NewSelect().Model(&out).Order("name").Limit(int64(p.Limit)).Offset(int64(p.Offset))
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.IDs != nil {
		if len(f.IDs) == 0 {
			return []Repository{}, 0, nil
		}
		q = q.Where("id IN (?)", bun.In(f.IDs))
	}
	n, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, err
	}
	return out, int(n), nil
}

// RepositoryUpdate holds the fields UpdateRepository changes; nil leaves a
// field as it is.
type RepositoryUpdate struct {
	Name        *string
	Description *string
	// RetainVersions sets Repository.RetainVersions (0: keep every
	// version); versions beyond the new count go at once.
	RetainVersions *int
}

// UpdateRepository changes a repository's name or description.
func (s *Store) UpdateRepository(ctx context.Context, id string, u RepositoryUpdate) (*Repository, error) {
	var r *Repository
	err := s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		var err error
		if r, err = tx.lockRepository(ctx, id); err != nil {
			return err
		}
		if u.Name != nil {
			if strings.TrimSpace(*u.Name) == "" || len(*u.Name) > 255 {
				return errdef.New(errdef.ErrInvalid, "repository name must be 1 to 255 characters")
			}
			r.Name = *u.Name
		}
		if u.Description != nil {
			r.Description = *u.Description
		}
		if u.RetainVersions != nil {
			if err := checkRetain(*u.RetainVersions); err != nil {
				return err
			}
			r.RetainVersions = *u.RetainVersions
		}
		_, err = tx.db.NewUpdate().Model(r).Column("name", "description", "retain_versions").WherePK().Exec(ctx)
		if db.IsUniqueViolation(err) {
			return errdef.New(errdef.ErrConflict, "a repository named %q already exists", r.Name)
		}
		if err != nil || u.RetainVersions == nil {
			return err
		}
		_, err = tx.retain(ctx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteRepository deletes a repository with all its versions. Content
// units stay: other repositories may hold them. While something serves the
// repository or one of its versions (a distribution: see Holders), it is
// errdef.ErrConflict, naming what does.
func (s *Store) DeleteRepository(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		repo, err := tx.lockRepository(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.refuseServed(ctx, repo); err != nil {
			return err
		}
		// Explicit deletes: SQLite enforces ON DELETE CASCADE only with
		// foreign keys on, and being explicit costs nothing.
		for _, table := range []string{"repository_contents", "repository_versions"} {
			if _, err := tx.db.NewDelete().Table(table).Where("repository_id = ?", id).Exec(ctx); err != nil {
				if db.IsForeignKeyViolation(err) {
					return errdef.New(errdef.ErrConflict, "a version of repository %q is still referenced by another object", repo.Name)
				}
				return err
			}
		}
		_, err = tx.db.NewDelete().Model((*Repository)(nil)).Where("id = ?", id).Exec(ctx)
		if db.IsForeignKeyViolation(err) {
			return errdef.New(errdef.ErrConflict, "repository %q is still referenced by another object", repo.Name)
		}
		return err
	})
}

// lockRepository reads a repository for update: on PostgreSQL it takes a row
// lock; SQLite transactions already hold the database write lock.
func (s *Store) lockRepository(ctx context.Context, id string) (*Repository, error) {
	r := new(Repository)
	q := s.db.NewSelect().Model(r).Where("id = ?", id)
	if s.db.Dialect().Name() == dialect.PG {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, notFound(err, "repository %q", id)
	}
	return r, nil
}

// lockRepositories locks the rows of the repositories ids that exist, in
// one statement and in id order, so that two transactions locking the
// same repositories never wait for each other in a cycle (PostgreSQL; on
// SQLite the transaction holds the database).
func (s *Store) lockRepositories(ctx context.Context, ids ...string) error {
	if s.db.Dialect().Name() != dialect.PG {
		return nil
	}
	var locked []string
	return s.db.NewSelect().Model((*Repository)(nil)).Column("id").
		Where("id IN (?)", bun.In(ids)).Order("id").For("UPDATE").Scan(ctx, &locked)
}

// notFound turns "no rows" into errdef.ErrNotFound with a message naming
// what was looked for (format and args) and saying it was not found.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errdef.New(errdef.ErrNotFound, format+" not found", args...)
	}
	return err
}
