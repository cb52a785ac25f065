// Package push is the push side of the OCI distribution spec as Go calls:
// blobs put whole or through resumable uploads (streamed into storage,
// verified against digest and size), manifests put by tag or digest,
// deletes of manifests, tags and blobs. The registry's HTTP handlers
// (distribution/registryapi) call each once; a program embedding Mooring
// calls them directly.
//
// A push to base path <name> goes to a push repository: the first push
// creates a repository <name> and a distribution serving it at base path
// <name>. Every manifest pushed makes a new immutable version of it.
// Blobs pushed but not yet referenced by a manifest are the repository's
// staged blobs (Pulp's "pending blobs"): pullable from it, and added to a
// version by the first manifest that refers to them. A base path that
// serves a synced repository or a pinned version refuses pushes
// (errdef.ErrRegistryDenied).
package push

import (
	"context"
	"embed"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates the tables of push repositories, staged blobs
// and uploads, after those of the distribution package they refer to.
func Migrate(ctx context.Context, db *bun.DB) error {
	if err := distribution.Migrate(ctx, db); err != nil {
		return err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return mooringdb.Migrate(ctx, db, mooringdb.Migrations{Set: "push", FS: sub})
}

// DefaultUploadTimeout is how long an upload may go untouched before it is
// discarded, when Options.UploadTimeout is zero.
const DefaultUploadTimeout = time.Hour

// Options configure a Service.
type Options struct {
	// UploadTimeout is how long a blob upload may go untouched before
	// SweepUploads discards it with its bytes. Default DefaultUploadTimeout.
	UploadTimeout time.Duration
	// Logger receives what background sweeps find; nil discards.
	Logger *slog.Logger
	// MaxBlobSize, when positive, is the largest blob a push may store, in
	// bytes; a larger one is refused while it streams, with
	// errdef.ErrBlobTooLarge (413 SIZE_INVALID). Default: no limit.
	MaxBlobSize int64
	// NamespaceQuota, when positive, is the most bytes the blobs of the
	// distributions of one namespace (the first segment of their base
	// paths) may take, staged blobs included: a push that finds the
	// namespace at or over it is refused with errdef.ErrRegistryDenied
	// saying how much is used (checked as uploads start and append, and
	// at manifest PUT). Default: no quota.
	NamespaceQuota int64
	// Created, when set, is called after a first push created a push
	// repository and its distribution, with the pusher named by the
	// context (WithPusher); the front door gives the pusher the owner
	// role on them. Its error is logged, not returned: the push went in.
	Created func(ctx context.Context, pusher string, repo *repository.Repository, dist *distribution.Distribution) error
}

type pusherKey struct{}

// WithPusher returns ctx naming user as the one who pushes, for
// Options.Created.
func WithPusher(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, pusherKey{}, user)
}

// Pusher returns the user WithPusher named, or "".
func Pusher(ctx context.Context) string {
	u, _ := ctx.Value(pusherKey{}).(string)
	return u
}

// Service pushes into the push repositories of one database and blob
// store. It is safe for concurrent use, also by several processes sharing
// the database and the store.
type Service struct {
	db       bun.IDB
	repos    *repository.Store
	dists    *distribution.Store
	registry *distribution.Registry
	blobs    storage.Driver
	opts     Options

	lastSweep atomic.Int64
}

// NewService returns a Service on db (migrated with Migrate) and blobs.
// registry is told of every new version so that it serves it at once; it
// should be the Registry that serves the same database, created with
// Options.Staged set to the Service's Staged (see StageLookup).
func NewService(db bun.IDB, blobs storage.Driver, registry *distribution.Registry, opts Options) *Service {
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = DefaultUploadTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		db:       db,
		repos:    repository.NewStore(db),
		dists:    distribution.NewStore(db),
		registry: registry,
		blobs:    blobs,
		opts:     opts,
	}
}

// pushRepository marks a repository created by a push.
type pushRepository struct {
	bun.BaseModel `bun:"table:push_repositories"`

	RepositoryID string    `bun:"repository_id,pk"`
	CreatedAt    time.Time `bun:"created_at"`
}

// stagedBlob is a blob pushed to a repository that no version holds yet.
type stagedBlob struct {
	bun.BaseModel `bun:"table:pending_blobs"`

	RepositoryID string        `bun:"repository_id,pk"`
	Digest       digest.Digest `bun:"digest,pk"`
	Size         int64         `bun:"size"`
	CreatedAt    time.Time     `bun:"created_at"`
}

// Target returns the push repository served at base path name. With
// create, a first push creates it and its distribution. A base path served
// by a repository that was not created by a push (a synced one, say), or
// by a pinned version, is errdef.ErrRegistryDenied; a malformed name
// errdef.ErrNameInvalid; a name not served, without create,
// errdef.ErrNameUnknown.
func (s *Service) Target(ctx context.Context, name string, create bool) (*repository.Repository, error) {
	if err := content.ValidateRepositoryName(name); err != nil {
		return nil, errdef.New(errdef.ErrNameInvalid, "%v", err)
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
			return nil, errdef.New(errdef.ErrRegistryDenied, "repository %q exists and was not created by a push", name)
		}
		dist := &distribution.Distribution{Name: name, BasePath: name, RepositoryID: &repo.ID}
		err = s.dists.Create(ctx, dist)
		if err == nil {
			s.registry.Forget(name)
			if s.opts.Created != nil {
				if err := s.opts.Created(ctx, Pusher(ctx), repo, dist); err != nil {
					s.opts.Logger.Warn("after a first push", "name", name, "err", err)
				}
			}
			return repo, nil
		}
		var fe *errdef.FieldError
		if errors.As(err, &fe) && errors.Is(err, errdef.ErrConflict) {
			if attempt < 20 {
				if _, again := s.dists.ByBasePath(ctx, name); again == nil {
					continue
				}
			}
			return nil, errdef.New(errdef.ErrRegistryDenied, "cannot serve %q: %s", name, fe.Message)
		}
		return nil, err
	}
}

// pushable checks that distribution d takes pushes and returns its
// repository.
func (s *Service) pushable(ctx context.Context, d *distribution.Distribution) (*repository.Repository, error) {
	if d.RepositoryID == nil {
		return nil, errdef.New(errdef.ErrRegistryDenied, "%s serves a fixed repository version", d.BasePath)
	}
	ok, err := s.isPushRepository(ctx, *d.RepositoryID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdef.New(errdef.ErrRegistryDenied, "%s serves a repository that is not a push repository (a synced one?)", d.BasePath)
	}
	return s.repos.Repository(ctx, *d.RepositoryID)
}

// IsPushRepository reports whether repository repoID was created by a push.
func (s *Service) IsPushRepository(ctx context.Context, repoID string) (bool, error) {
	return s.isPushRepository(ctx, repoID)
}

func (s *Service) isPushRepository(ctx context.Context, repoID string) (bool, error) {
	return s.db.NewSelect().Model((*pushRepository)(nil)).Where("repository_id = ?", repoID).Exists(ctx)
}

func (s *Service) createPushRepository(ctx context.Context, name string) (*repository.Repository, error) {
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

// Staged reports whether blob d is staged in repository repoID: pushed,
// and not yet in a version. It has the shape of
// distribution.Options.Staged, so that a Registry serves staged blobs.
func (s *Service) Staged(ctx context.Context, repoID string, d digest.Digest) (bool, error) {
	return s.db.NewSelect().Model((*stagedBlob)(nil)).
		Where("repository_id = ? AND digest = ?", repoID, d).Exists(ctx)
}

// stage records blob d as pushed to repository repoID.
func (s *Service) stage(ctx context.Context, repoID string, d digest.Digest, size int64) error {
	_, err := s.db.NewInsert().Model(&stagedBlob{RepositoryID: repoID, Digest: d, Size: size, CreatedAt: time.Now().UTC()}).
		On("CONFLICT (repository_id, digest) DO UPDATE").Set("created_at = EXCLUDED.created_at").
		Exec(ctx)
	return err
}

// heldBlobs returns which of ds repository repoID holds, staged or in its
// latest version, in a few queries however many digests there are. The
// staged rows are read first and the latest version after: a concurrent
// manifest push that takes a staged blob into a version commits that
// version before it unstages the blob, so a blob pushed to the name is
// always found by one of the two reads.
func (s *Service) heldBlobs(ctx context.Context, repoID string, ds []digest.Digest) (map[digest.Digest]bool, error) {
	held := map[digest.Digest]bool{}
	for chunk := range slices.Chunk(ds, 500) {
		var staged []digest.Digest
		if err := s.db.NewSelect().Model((*stagedBlob)(nil)).Column("digest").
			Where("repository_id = ? AND digest IN (?)", repoID, bun.In(chunk)).Scan(ctx, &staged); err != nil {
			return nil, err
		}
		for _, d := range staged {
			held[d] = true
		}
	}
	var rest []digest.Digest
	for _, d := range ds {
		if !held[d] {
			rest = append(rest, d)
		}
	}
	if len(rest) == 0 {
		return held, nil
	}
	repo, err := s.repos.Repository(ctx, repoID)
	if err != nil {
		return nil, err
	}
	inVersion, err := s.repos.Present(ctx, latest(repo), content.TypeBlob, rest)
	if err != nil {
		return nil, err
	}
	maps.Copy(held, inVersion)
	return held, nil
}

func latest(repo *repository.Repository) repository.VersionRef {
	return repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}
}

// PutBlob stores the bytes of r as blob d in the push repository at name
// (created by this first push) and stages it there. size is the expected
// length, or -1 when unknown. Digest and size are verified while the bytes
// stream into storage; on a mismatch nothing is stored and the error wraps
// errdef.ErrDigestInvalid or errdef.ErrSizeInvalid. It returns the size
// stored.
func (s *Service) PutBlob(ctx context.Context, name string, d digest.Digest, size int64, r io.Reader) (int64, error) {
	if err := validDigest(d); err != nil {
		return 0, err
	}
	repo, err := s.Target(ctx, name, true)
	if err != nil {
		return 0, err
	}
	if err := s.checkSize(size); err != nil {
		return 0, err
	}
	if err := s.checkQuota(ctx, name, size); err != nil {
		return 0, err
	}
	release, err := s.lease(ctx, d)
	if err != nil {
		return 0, err
	}
	defer release()
	if err := s.blobs.Put(ctx, d, size, s.capped(r, 0)); err != nil {
		return 0, err
	}
	info, err := s.blobs.Stat(ctx, d)
	if err != nil {
		return 0, err
	}
	if size >= 0 && info.Size != size {
		return 0, errdef.New(errdef.ErrSizeInvalid, "blob %s has %d bytes, the request sent %d", d, info.Size, size)
	}
	return info.Size, s.stage(ctx, repo.ID, d, info.Size)
}

// checkSize refuses a declared size over Options.MaxBlobSize before any
// byte is read.
func (s *Service) checkSize(size int64) error {
	if max := s.opts.MaxBlobSize; max > 0 && size > max {
		return errdef.New(errdef.ErrBlobTooLarge, "the blob is %d bytes, the limit is %d", size, max)
	}
	return nil
}

// capped returns r limited to what Options.MaxBlobSize leaves after have
// bytes: reading past it fails with errdef.ErrBlobTooLarge, so a blob of
// undeclared size is refused as it streams, not after it is stored.
func (s *Service) capped(r io.Reader, have int64) io.Reader {
	if s.opts.MaxBlobSize <= 0 {
		return r
	}
	return &capReader{r: r, left: s.opts.MaxBlobSize - have, max: s.opts.MaxBlobSize}
}

type capReader struct {
	r         io.Reader
	left, max int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errdef.New(errdef.ErrBlobTooLarge, "the blob is larger than the limit of %d bytes", c.max)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n - 1, errdef.New(errdef.ErrBlobTooLarge, "the blob is larger than the limit of %d bytes", c.max)
	}
	return n, err
}

// Mount stages blob d, already stored, in the push repository at name
// (distribution spec "Mounting a blob from another repository"): from the
// repository served at from when from is not empty, else from anywhere it
// was pushed or synced (pulls are anonymous, so any such blob is readable
// anyway). It reports false, and changes nothing, when the blob cannot be
// mounted.
func (s *Service) Mount(ctx context.Context, name string, d digest.Digest, from string) (bool, error) {
	if err := validDigest(d); err != nil {
		return false, err
	}
	repo, err := s.Target(ctx, name, true)
	if err != nil {
		return false, err
	}
	release, err := s.lease(ctx, d)
	if err != nil {
		return false, err
	}
	defer release()
	ok, err := s.mountable(ctx, d, from)
	if err != nil || !ok {
		return false, err
	}
	info, err := s.blobs.Stat(ctx, d)
	if err != nil {
		return false, err
	}
	return true, s.stage(ctx, repo.ID, d, info.Size)
}

func (s *Service) mountable(ctx context.Context, d digest.Digest, from string) (bool, error) {
	if from != "" {
		v, err := s.registry.Resolve(ctx, from)
		if err != nil {
			return false, nil
		}
		b, err := s.registry.OpenBlob(ctx, v, d)
		if err != nil {
			return false, nil
		}
		b.Close()
		// A manifest served as a blob is not in storage: not mountable.
		_, err = s.blobs.Stat(ctx, d)
		return err == nil, nil
	}
	if _, err := s.repos.ContentByDigest(ctx, content.TypeBlob, d); err != nil {
		// Not in any version: perhaps pushed and staged somewhere.
		staged, err := s.db.NewSelect().Model((*stagedBlob)(nil)).Where("digest = ?", d).Exists(ctx)
		if err != nil || !staged {
			return false, err
		}
	}
	if _, err := s.blobs.Stat(ctx, d); err != nil {
		return false, nil
	}
	return true, nil
}

// DeleteBlob takes blob d out of the push repository at name: unstaged,
// and out of a new version when its latest holds it. Its bytes stay in
// storage, where other repositories may hold it. A blob the repository
// does not hold is errdef.ErrBlobUnknown.
func (s *Service) DeleteBlob(ctx context.Context, name string, d digest.Digest) error {
	if err := validDigest(d); err != nil {
		return err
	}
	repo, err := s.Target(ctx, name, false)
	if err != nil {
		return err
	}
	res, err := s.db.NewDelete().Model((*stagedBlob)(nil)).Where("repository_id = ? AND digest = ?", repo.ID, d).Exec(ctx)
	if err != nil {
		return err
	}
	n, _ := res.RowsAffected()
	units, err := s.repos.InVersion(ctx, latest(repo), d, content.TypeBlob)
	if err != nil {
		return err
	}
	if n == 0 && len(units) == 0 {
		return errdef.New(errdef.ErrBlobUnknown, "%s", d)
	}
	if len(units) == 0 {
		return nil
	}
	_, err = s.newVersion(ctx, name, repo.ID, repository.Change{Remove: ids(units)})
	return err
}

// newVersion makes the next version of repository repoID with change; a
// change that leaves the content as it is makes none (nil version). The
// registry serves the new version at once.
func (s *Service) newVersion(ctx context.Context, name, repoID string, ch repository.Change) (*repository.Version, error) {
	v, err := s.repos.NewVersion(ctx, repoID, ch)
	if errors.Is(err, repository.ErrNoChange) {
		v, err = nil, nil
	}
	s.registry.Forget(name)
	return v, err
}

func ids(units []repository.Content) []int64 {
	out := make([]int64, len(units))
	for i, u := range units {
		out[i] = u.ID
	}
	return out
}

// DropStaged gives up the blobs staged longer ago than both protect and
// the upload timeout that no manifest has taken into a version: a push
// abandoned between its blobs and its manifest. They are no longer
// pullable from their repository, and orphan cleanup may then delete
// their bytes. It returns how many it dropped. A manifest pushed meanwhile
// that uses one still succeeds: its blobs are leased (see lease).
func (s *Service) DropStaged(ctx context.Context, protect time.Duration) (int, error) {
	before := time.Now().UTC().Add(-max(protect, s.opts.UploadTimeout))
	res, err := s.db.NewDelete().Model((*stagedBlob)(nil)).Where("created_at < ?", before).Exec(ctx)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// lease keeps blobs ds from orphan cleanup while a push relies on their
// bytes, until the returned func is called: it is taken before the bytes
// are looked for or stored, and released once a staged row or a version
// keeps them (see repository.Store.LeaseBlobs).
func (s *Service) lease(ctx context.Context, ds ...digest.Digest) (release func(), err error) {
	l, err := s.repos.LeaseBlobs(ctx, ds)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := l.Release(context.WithoutCancel(ctx)); err != nil {
			s.opts.Logger.Warn("releasing a blob lease", "err", err)
		}
	}, nil
}

// validDigest checks a digest named by a client.
func validDigest(d digest.Digest) error {
	if err := storage.ValidateDigest(d); err != nil {
		return errdef.New(errdef.ErrDigestInvalid, "%v", err)
	}
	return nil
}
