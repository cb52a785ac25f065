package mooring

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/internal/secrets"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/push"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/remote/ocilayout"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/storage/s3"
	"github.com/mooring-dev/mooring/task"
)

// Options tune an opened Mooring. Zero fields take the documented defaults.
type Options struct {
	// Logger receives the logs of syncs, task workers and background
	// sweeps; nil discards them.
	Logger *slog.Logger
	// Registry tunes the caches of the registry's read-only view.
	Registry distribution.Options
	// UploadTimeout is how long a registry blob upload may go untouched
	// before it is discarded. Default push.DefaultUploadTimeout (1h).
	UploadTimeout time.Duration
	// Retry says how sync requests and downloads are retried; the zero
	// value is remote.DefaultRetryPolicy.
	Retry remote.RetryPolicy
	// MaxBlobSize, when positive, caps the size of a pushed blob (see
	// push.Options.MaxBlobSize). Default: no limit.
	MaxBlobSize int64
	// WorkerTimeout is how long after its last heartbeat a task worker is
	// no longer counted online (Status, metrics): the task runners'
	// task.Options.DeadAfter. Default 30s.
	WorkerTimeout time.Duration
	// NamespaceQuota, when positive, caps the bytes of each namespace's
	// blobs (see push.Options.NamespaceQuota). Default: no quota.
	NamespaceQuota int64
	// SecretKeys seals remote passwords, client keys and proxy URLs in the
	// database (remote.Store.SetSealer): 32-byte keys, base64, one a line,
	// the first sealing and all opening (internal/secrets). New reseals
	// every remote with the first, so keys rotate by putting a new one
	// first, starting once, then dropping the old. Empty: stored as they
	// are.
	SecretKeys string
	// TokenKeyFile is a PEM file with the ECDSA P-256 key registry tokens
	// are signed with; empty: a key generated once and kept in the
	// database (see SigningKey).
	TokenKeyFile string
	// TokenTTL is how long an issued registry token is valid; default
	// registryapi.DefaultTokenTTL (5 minutes).
	TokenTTL time.Duration
	// Fetch tunes the fetching of on-demand content (see
	// remote.FetcherOptions); its Logger defaults to Logger.
	Fetch remote.FetcherOptions
	// CacheMaxSize, when positive, is the budget in bytes of each
	// pull-through distribution without a MaxSize of its own (see
	// EnforceCacheBudgets). Default: none.
	CacheMaxSize int64
}

// Mooring is an opened Mooring: one database and one blob store, and the
// services over them. Its fields are set by Open and New and are safe for
// concurrent use; several processes may open the same PostgreSQL database
// and blob store.
type Mooring struct {
	// DB is the metadata database, migrated.
	DB *bun.DB
	// Blobs holds blob bytes.
	Blobs storage.Driver

	// Repositories holds repositories, their immutable versions and the
	// content units they share.
	Repositories *repository.Store
	// Remotes holds the upstream registries to sync from.
	Remotes *remote.Store
	// Distributions holds which base path serves which repository or
	// version.
	Distributions *distribution.Store
	// Tasks is the durable task queue.
	Tasks *task.Store
	// Registry is the read-only view of what each base path serves.
	Registry *distribution.Registry
	// Push pushes blobs and manifests into push repositories.
	Push *push.Service
	// Syncer syncs remotes into repositories.
	Syncer *remote.Syncer
	// Fetcher fetches on-demand content for the registry, and manifests
	// for pull-through caches.
	Fetcher *remote.Fetcher
	// Users are who may use the REST API and push.
	Users *Users
	// Metrics are the Prometheus metrics of this process's syncs, tasks,
	// caches and, as a server reports them, requests.
	Metrics *Metrics

	pullThrough   *pullThrough
	cacheKick     chan struct{} // a blob fetched on demand was stored
	closeDB       bool
	log           *slog.Logger
	workerTimeout time.Duration
	opts          Options
}

// Open opens Mooring on database, an SQLite file path or a postgres://
// DSN, and blobStore, a directory, file://DIR, or
// s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION (credentials from the
// AWS environment). Every migration is applied. Close releases both.
func Open(ctx context.Context, database, blobStore string, opts Options) (*Mooring, error) {
	if err := CheckDatabase(database); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	blobs, err := OpenStorage(ctx, blobStore)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	db, err := mooringdb.Open(ctx, database)
	if err != nil {
		return nil, err
	}
	m, err := New(ctx, db, blobs, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	m.closeDB = true
	return m, nil
}

// OpenStorage opens the blob store a storage URL names: a directory,
// file://DIR, or s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION. A
// malformed URL is refused as ParseStorage says.
func OpenStorage(ctx context.Context, url string) (storage.Driver, error) {
	loc, err := ParseStorage(url)
	if err != nil {
		return nil, err
	}
	if loc.S3 != nil {
		return s3.New(ctx, *loc.S3)
	}
	return filesystem.New(loc.Dir)
}

// StorageLocation is where a storage URL puts blobs: a directory, or an
// S3 bucket.
type StorageLocation struct {
	// Dir is the directory of filesystem storage; empty for S3.
	Dir string
	// S3 is the bucket's configuration; nil for filesystem storage.
	S3 *s3.Config
}

// storageSchemeRe matches a URL scheme: two or more letters, so that a
// Windows drive letter is not taken for one.
var storageSchemeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]+:`)

// ParseStorage parses a storage URL without opening it: a directory,
// file://DIR (DIR absolute, or relative to the working directory) or
// s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION. Anything else is
// refused, never guessed at, with an error wrapping errdef.ErrInvalid: an
// empty URL or file:// without a directory, file:DIR without the slashes,
// and other schemes.
func ParseStorage(url string) (StorageLocation, error) {
	switch {
	case url == "":
		return StorageLocation{}, errdef.New(errdef.ErrInvalid, "no directory or URL given")
	case strings.HasPrefix(url, "s3://"):
		cfg, err := s3.ParseURL(url)
		if err != nil {
			// err names the URL, with any credentials in it masked.
			return StorageLocation{}, errdef.New(errdef.ErrInvalid, "%v", err)
		}
		return StorageLocation{S3: &cfg}, nil
	case strings.HasPrefix(url, "file://"):
		dir := strings.TrimPrefix(url, "file://")
		if dir == "" {
			return StorageLocation{}, errdef.New(errdef.ErrInvalid, "%q names no directory: want file://DIR, such as file:///var/lib/mooring/blobs", url)
		}
		return StorageLocation{Dir: dir}, nil
	case strings.HasPrefix(url, "file:"):
		return StorageLocation{}, errdef.New(errdef.ErrInvalid, "%q: want file://DIR (with two slashes) or a plain directory", url)
	case storageSchemeRe.MatchString(url):
		return StorageLocation{}, errdef.New(errdef.ErrInvalid, "%q: want a directory, file://DIR or s3://BUCKET", url)
	}
	return StorageLocation{Dir: url}, nil
}

// CheckDatabase reports, without connecting, whether Open takes database:
// an SQLite file path (or sqlite://PATH, file:PATH) or a postgres:// DSN.
// Any other scheme, such as mysql://, is refused with an error wrapping
// errdef.ErrInvalid rather than taken for a file name.
func CheckDatabase(database string) error {
	if err := mooringdb.Check(database); err != nil {
		return errdef.New(errdef.ErrInvalid, "%v", err)
	}
	return nil
}

// Migrate creates or updates every table of every Mooring package in db.
// It is idempotent and safe to run from several processes at once.
func Migrate(ctx context.Context, db *bun.DB) error {
	for _, m := range []func(context.Context, *bun.DB) error{repository.Migrate, task.Migrate, remote.Migrate, distribution.Migrate, push.Migrate, migrateUsers} {
		if err := m(ctx, db); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// New returns Mooring over an open database, which it migrates, and a
// blob store. Close leaves db open.
func New(ctx context.Context, db *bun.DB, blobs storage.Driver, opts Options) (*Mooring, error) {
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mooring{
		DB:            db,
		Blobs:         blobs,
		Repositories:  repository.NewStore(db),
		Remotes:       remote.NewStore(db),
		Distributions: distribution.NewStore(db),
		Tasks:         task.NewStore(db),
		Users:         NewUsers(db),
		log:           log,
		workerTimeout: opts.WorkerTimeout,
		opts:          opts,
	}
	if m.workerTimeout <= 0 {
		m.workerTimeout = 30 * time.Second
	}
	if opts.SecretKeys != "" {
		keys, err := secrets.Parse(opts.SecretKeys)
		if err != nil {
			return nil, errdef.New(errdef.ErrInvalid, "secret keys: %v", err)
		}
		m.Remotes.SetSealer(keys)
		if _, err := m.Remotes.Reseal(ctx); err != nil {
			return nil, fmt.Errorf("reseal remote secrets: %w", err)
		}
	}
	m.Metrics = newMetrics(m)
	m.Syncer = &remote.Syncer{Repos: m.Repositories, Blobs: blobs, Logger: log, Retry: opts.Retry, OnSync: m.Metrics.observeSync}
	m.cacheKick = make(chan struct{}, 1)
	m.Fetcher = remote.NewFetcher(m.Repositories, m.Remotes, blobs, m.fetcherOptions())
	m.pullThrough = &pullThrough{m: m}
	ropts := opts.Registry
	if ropts.Fetcher == nil {
		ropts.Fetcher = distribution.BlobFetcherFunc(m.fetchBlob)
	}
	if ropts.PullThrough == nil {
		ropts.PullThrough = m.pullThrough
	}
	var pushes *push.Service
	if ropts.Staged == nil {
		ropts.Staged = func(ctx context.Context, repoID string, d digest.Digest) (bool, error) {
			return pushes.Staged(ctx, repoID, d)
		}
	}
	if ropts.Pushed == nil {
		ropts.Pushed = func(ctx context.Context, repoID string) (bool, error) {
			return pushes.IsPushRepository(ctx, repoID)
		}
	}
	m.Registry = distribution.NewRegistry(m.Distributions, m.Repositories, blobs, ropts)
	pushes = push.NewService(db, blobs, m.Registry, push.Options{UploadTimeout: opts.UploadTimeout, Logger: log, MaxBlobSize: opts.MaxBlobSize,
		Created: m.ownFirstPush, NamespaceQuota: opts.NamespaceQuota})
	m.Push = pushes
	return m, nil
}

// Close releases the database Open opened. It does not stop what the
// program started with the Mooring (servers, runners).
func (m *Mooring) Close() error {
	if m.closeDB {
		return m.DB.Close()
	}
	return nil
}

// Sync mirrors remote r's upstream repository into repository repo and
// returns what it did; see remote.Syncer.Sync, whose errors it returns.
// The remote need not be stored. The registry serves the new version at
// once.
func (m *Mooring) Sync(ctx context.Context, r *remote.Remote, repo *repository.Repository, opts remote.SyncOptions) (*remote.SyncResult, error) {
	if r == nil || repo == nil {
		return nil, errdef.New(errdef.ErrInvalid, "sync needs a remote and a repository")
	}
	res, err := m.Syncer.Sync(ctx, r, repo.ID, opts)
	if res != nil && res.Version != nil {
		m.Registry.ForgetRepository(ctx, repo.ID)
	}
	return res, err
}

// RegistryHandler returns an http.Handler serving the OCI distribution
// API (/v2/) for every distribution: anonymous pulls, and pushes and
// deletes for whom opts.Auth lets in (nobody when it is nil: they are
// answered 401). Mount it at "/v2/" of any mux.
func (m *Mooring) RegistryHandler(opts registryapi.Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = m.log
	}
	return registryapi.New(m.Registry, m.Push, m.Blobs, opts)
}

// NewRunner returns a task Runner on the database with the sync task
// (remote.SyncTask) registered, which also dispatches sync schedules
// (remote.Schedule) every second, and the OCI layout tasks
// (ocilayout.ExportTask, ocilayout.ImportTask), and the content lifecycle's
// tasks (EnqueueAction, EnqueueDeleteRepository, EnqueueDeleteVersion,
// EnqueueOrphanCleanup): enqueue syncs with remote.EnqueueSync and
// call Run. created names a version a sync made, as recorded on the task
// (the REST API records its href); nil records the version's id.
func (m *Mooring) NewRunner(opts task.Options, created func(*repository.Version) string) *task.Runner {
	if opts.Logger == nil {
		opts.Logger = m.log
	}
	if onFinish := opts.OnFinish; onFinish != nil {
		opts.OnFinish = func(name string, state task.State, ran time.Duration) {
			m.Metrics.observeTask(name, state, ran)
			onFinish(name, state, ran)
		}
	} else {
		opts.OnFinish = m.Metrics.observeTask
	}
	if created == nil {
		created = func(v *repository.Version) string { return v.ID }
	}
	r := task.NewRunner(m.DB, opts)
	r.Register(remote.SyncTask, remote.SyncHandler(m.Syncer, m.Remotes, func(v *repository.Version) string {
		m.Registry.ForgetRepository(context.Background(), v.RepositoryID)
		return created(v)
	}))
	r.Register(remote.ReclaimTask, remote.ReclaimHandler(m.Repositories, m.Blobs))
	r.Register(ocilayout.ExportTask, ocilayout.ExportHandler(m.Repositories, m.Blobs))
	r.Register(ocilayout.ImportTask, ocilayout.ImportHandler(m.Repositories, m.Blobs, func(v *repository.Version) string {
		m.Registry.ForgetRepository(context.Background(), v.RepositoryID)
		return created(v)
	}))
	// Repository actions, deletes and orphan cleanup (lifecycle.go).
	m.registerLifecycle(r, created)
	// Every process running tasks dispatches sync schedules; each period
	// is dispatched by one of them (remote.Store.DispatchSchedules).
	r.Every("sync schedules", time.Second, func(ctx context.Context) error {
		_, err := m.Remotes.DispatchSchedules(ctx, time.Now())
		return err
	})
	return r
}
