package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/repository"
)

// The push side of the registry (distribution spec "Push", "Content
// Management"). A push to base path <name> goes to a push repository: one
// the first push created, named <name>, served by a distribution of the
// same name and base path. Every manifest pushed makes a new version of it.
// Blobs pushed but not yet referenced by a manifest are the repository's
// pending blobs: pullable from it, and added to a version by the manifest
// that refers to them, as in Pulp's pulp_container.

// pushRepository marks a repository created by a push.
type pushRepository struct {
	bun.BaseModel `bun:"table:push_repositories"`

	RepositoryID string    `bun:"repository_id,pk"`
	CreatedAt    time.Time `bun:"created_at"`
}

// pendingBlob is a blob pushed to a repository that no version holds yet.
type pendingBlob struct {
	bun.BaseModel `bun:"table:pending_blobs"`

	RepositoryID string        `bun:"repository_id,pk"`
	Digest       digest.Digest `bun:"digest,pk"`
	Size         int64         `bun:"size"`
	CreatedAt    time.Time     `bun:"created_at"`
}

// pushTarget returns the push repository served at base path name. With
// create, a first push creates it and its distribution. A base path served
// by a repository that was not created by push (a synced one, say), or by
// a pinned version, is DENIED.
func (s *Server) pushTarget(ctx context.Context, name string, create bool) (*repository.Repository, error) {
	if err := content.ValidateRepositoryName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", errdef.ErrNameInvalid, err)
	}
	for attempt := 0; ; attempt++ {
		d, err := s.dists.ByBasePath(ctx, name)
		if err == nil {
			return s.pushable(ctx, d)
		}
		if !errors.Is(err, errdef.ErrNameUnknown) || !create {
			return nil, err
		}
		repo, err := s.repos.RepositoryByName(ctx, name)
		if errors.Is(err, errdef.ErrNotFound) {
			repo, err = s.createPushRepository(ctx, name)
			if errors.Is(err, errdef.ErrConflict) && attempt < 20 {
				continue // created meanwhile by a concurrent push
			}
		}
		if err != nil {
			return nil, err
		}
		if ok, err := s.isPushRepository(ctx, repo.ID); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("%w: repository %q exists and was not created by a push", errdef.ErrRegistryDenied, name)
		}
		err = s.dists.Create(ctx, &distribution.Distribution{Name: name, BasePath: name, RepositoryID: &repo.ID})
		if err == nil {
			s.registry.Forget(name)
			return repo, nil
		}
		var fe *errdef.FieldError
		if errors.As(err, &fe) && errors.Is(err, errdef.ErrConflict) {
			if attempt < 20 {
				if _, again := s.dists.ByBasePath(ctx, name); again == nil {
					continue
				}
			}
			return nil, fmt.Errorf("%w: cannot serve %q: %s", errdef.ErrRegistryDenied, name, fe.Message)
		}
		return nil, err
	}
}

// pushable checks that distribution d takes pushes and returns its
// repository.
func (s *Server) pushable(ctx context.Context, d *distribution.Distribution) (*repository.Repository, error) {
	if d.RepositoryID == nil {
		return nil, fmt.Errorf("%w: %s serves a fixed repository version", errdef.ErrRegistryDenied, d.BasePath)
	}
	ok, err := s.isPushRepository(ctx, *d.RepositoryID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s serves a repository that is not a push repository (a synced one?)", errdef.ErrRegistryDenied, d.BasePath)
	}
	return s.repos.Repository(ctx, *d.RepositoryID)
}

func (s *Server) isPushRepository(ctx context.Context, repoID string) (bool, error) {
	return s.db.NewSelect().Model((*pushRepository)(nil)).Where("repository_id = ?", repoID).Exists(ctx)
}

func (s *Server) createPushRepository(ctx context.Context, name string) (*repository.Repository, error) {
	var repo *repository.Repository
	err := s.repos.InTx(ctx, func(ctx context.Context, tx *repository.Store) error {
		var err error
		if repo, err = tx.CreateRepository(ctx, name, "Created by a registry push"); err != nil {
			return err
		}
		_, err = tx.DB().NewInsert().Model(&pushRepository{RepositoryID: repo.ID, CreatedAt: time.Now().UTC()}).Exec(ctx)
		return err
	})
	return repo, err
}

// staged reports whether blob d is pending in repository repoID; the
// Registry asks it about blobs its version does not hold.
func (s *Server) staged(ctx context.Context, repoID string, d digest.Digest) (bool, error) {
	return s.db.NewSelect().Model((*pendingBlob)(nil)).
		Where("repository_id = ? AND digest = ?", repoID, d).Exists(ctx)
}

// addPending records blob d as pushed to repository repoID.
func (s *Server) addPending(ctx context.Context, repoID string, d digest.Digest, size int64) error {
	_, err := s.db.NewInsert().Model(&pendingBlob{RepositoryID: repoID, Digest: d, Size: size, CreatedAt: time.Now().UTC()}).
		On("CONFLICT (repository_id, digest) DO UPDATE").Set("created_at = EXCLUDED.created_at").
		Exec(ctx)
	return err
}

// latest returns the View of repo's latest version, as the registry would
// serve it.
func latestView(name string, repo *repository.Repository) *distribution.View {
	return &distribution.View{BasePath: name, RepositoryID: repo.ID, Number: repo.LatestVersion}
}

// requirePush authenticates a push or delete: HTTP Basic with a REST user.
func (s *Server) requirePush(r *http.Request) error {
	return s.authenticate(r)
}

// location returns the path of a blob or manifest for Location headers.
func location(name, kind, ref string) string {
	return "/v2/" + name + "/" + kind + "/" + ref
}

// inVersion returns the units of the latest version of repo with digest d.
func (s *Server) inVersion(ctx context.Context, repo *repository.Repository, d digest.Digest) ([]repository.Content, error) {
	units, _, err := s.repos.ListContent(ctx, repository.ContentFilter{
		In:     &repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion},
		Digest: d, Page: repository.Page{Limit: 100}})
	return units, err
}

// hasBlob reports whether repo holds blob d, in its latest version or
// pending, and its size when known.
func (s *Server) hasBlob(ctx context.Context, repo *repository.Repository, d digest.Digest) (bool, error) {
	if ok, err := s.staged(ctx, repo.ID, d); err != nil || ok {
		return ok, err
	}
	units, err := s.inVersion(ctx, repo, d)
	if err != nil {
		return false, err
	}
	for _, u := range units {
		if u.Type == content.TypeBlob && !u.Foreign {
			return true, nil
		}
	}
	return false, nil
}

// newPushVersion makes the next version of repo with change; a change that
// leaves the content as it is makes none. The registry sees the new version
// at once.
func (s *Server) newPushVersion(ctx context.Context, name string, repo *repository.Repository, ch repository.Change) error {
	_, err := s.repos.NewVersion(ctx, repo.ID, ch)
	if errors.Is(err, repository.ErrNoChange) {
		err = nil
	}
	s.registry.Forget(name)
	return err
}
