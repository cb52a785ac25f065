package repository

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
)

// Holder is something that serves a repository or one of its versions (a
// distribution, say), and so keeps DeleteVersion and DeleteRepository from
// deleting what it serves.
//
// Holders are the rows of the view repository_holders, whose columns are
// these fields. This package's migrations create the view empty; a package
// that serves repositories redefines it over its own tables in a migration
// of its own (distribution does). The database, not the program, knows the
// holders, so every Store on it refuses alike, however it was built and
// whichever packages the program imports.
type Holder struct {
	bun.BaseModel `bun:"table:repository_holders"`

	// Kind says what holds the repository ("distribution").
	Kind string `bun:"kind" json:"kind"`
	// Name names the holder among those of its kind.
	Name string `bun:"name" json:"name"`
	// RepositoryID is the repository served.
	RepositoryID string `bun:"repository_id" json:"repository_id"`
	// VersionID, when set, is the one version served; when empty, the
	// holder follows the repository's latest version.
	VersionID string `bun:"version_id" json:"version_id,omitempty"`
}

// String names the holder as messages do: distribution "x".
func (h Holder) String() string { return fmt.Sprintf("%s %q", h.Kind, h.Name) }

// Holders returns what serves repository repoID or one of its versions,
// by kind and name.
func (s *Store) Holders(ctx context.Context, repoID string) ([]Holder, error) {
	hs := []Holder{}
	err := s.db.NewSelect().Model(&hs).Where("repository_id = ?", repoID).Order("kind", "name").Scan(ctx)
	return hs, err
}

// refuseServed is errdef.ErrConflict, naming the holders, when something
// serves repo or one of its versions.
func (s *Store) refuseServed(ctx context.Context, repo *Repository) error {
	hs, err := s.Holders(ctx, repo.ID)
	if err != nil || len(hs) == 0 {
		return err
	}
	return servedErr(fmt.Sprintf("repository %q", repo.Name), hs)
}

// refuseServedVersion is errdef.ErrConflict, naming the holders, when
// something pins version v of repo. What follows repo does not hold its
// latest version: deleting that version rolls the followers back to the
// version before, which is theirs to serve.
func (s *Store) refuseServedVersion(ctx context.Context, repo *Repository, v *Version) error {
	var hs []Holder
	err := s.db.NewSelect().Model(&hs).Where("repository_id = ? AND version_id = ?", repo.ID, v.ID).
		Order("kind", "name").Scan(ctx)
	if err != nil || len(hs) == 0 {
		return err
	}
	return servedErr(fmt.Sprintf("version %d of repository %q", v.Number, repo.Name), hs)
}

func servedErr(what string, hs []Holder) error {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.String()
	}
	them := "it"
	if len(hs) > 1 {
		them = "them"
	}
	return errdef.New(errdef.ErrConflict, "%s is served by %s; point %s elsewhere or delete %s first",
		what, strings.Join(names, ", "), them, them)
}

// CheckDeleteRepository reports, without changing anything, whether
// DeleteRepository would delete repository id now: errdef.ErrNotFound for
// none, errdef.ErrConflict naming what serves it.
func (s *Store) CheckDeleteRepository(ctx context.Context, id string) error {
	repo, err := s.Repository(ctx, id)
	if err != nil {
		return err
	}
	return s.refuseServed(ctx, repo)
}

// CheckDeleteVersion reports, without changing anything, whether
// DeleteVersion would delete version n of repository repoID now:
// errdef.ErrNotFound for none, errdef.ErrConflict naming what pins it or
// when it is the only version.
func (s *Store) CheckDeleteVersion(ctx context.Context, repoID string, n int) error {
	repo, err := s.Repository(ctx, repoID)
	if err != nil {
		return err
	}
	v, err := s.Version(ctx, repoID, n)
	if err != nil {
		return err
	}
	if err := s.refuseServedVersion(ctx, repo, v); err != nil {
		return err
	}
	_, _, err = s.neighbours(ctx, repo, n)
	return err
}
