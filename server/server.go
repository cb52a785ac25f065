// Package server composes the Mooring SDK into two HTTP services: the REST
// API of Pulp's pulp_docker (/pulp/api/v3/), and the OCI distribution spec
// (/v2/): anonymous pull of every distribution, and push, delete and
// referrers for REST API users (push.go, upload.go, push_manifest.go).
//
// Handlers are thin: they parse the request, make one SDK call and encode
// the result. Routes are declared in routes.go; one dispatcher
// (dispatch.go) authenticates and renders errors through one table
// (errors.go).
package server

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/distribution"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates every table the server needs: those of the
// SDK packages it composes, and its users table.
func Migrate(ctx context.Context, db *bun.DB) error {
	for _, m := range []func(context.Context, *bun.DB) error{repository.Migrate, task.Migrate, remote.Migrate, distribution.Migrate} {
		if err := m(ctx, db); err != nil {
			return err
		}
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return mooringdb.Migrate(ctx, db, mooringdb.Migrations{Set: "server", FS: sub})
}

// Options configure a Server.
type Options struct {
	// DB is the metadata database, migrated with Migrate.
	DB *bun.DB
	// Blobs stores blob bytes.
	Blobs storage.Driver
	// ContentOrigin is host:port of the registry service, shown in each
	// distribution's registry_path. Default "localhost:24816".
	ContentOrigin string
	// Registry tunes the registry's caches.
	Registry distribution.Options
	// RedirectBlobs makes the registry answer a blob GET with 307 Temporary
	// Redirect to a URL of the blob in the backing store (distribution
	// spec, "Pulling blobs"), once it has checked that the served version
	// holds the blob, so that blob bytes do not pass through the server.
	// It needs Blobs to be a storage.Redirector; with any other driver, and
	// for manifests fetched as blobs, blobs are streamed as by default.
	// HEAD is always answered by the server.
	RedirectBlobs bool
	// RedirectExpiry is how long a redirect URL stays valid. Default 20
	// minutes, as CNCF distribution's S3 driver uses.
	RedirectExpiry time.Duration
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// UploadTimeout is how long a blob upload may go untouched before it
	// is discarded with its bytes. Default DefaultUploadTimeout (1h).
	UploadTimeout time.Duration
}

// DefaultRedirectExpiry is Options.RedirectExpiry's default.
const DefaultRedirectExpiry = 20 * time.Minute

// Server holds the SDK stores both services use.
type Server struct {
	db       *bun.DB
	blobs    storage.Driver
	repos    *repository.Store
	dists    *distribution.Store
	remotes  *remote.Store
	tasks    *task.Store
	registry *distribution.Registry
	redirect storage.Redirector // nil: stream blobs
	expiry   time.Duration
	origin   string
	log      *slog.Logger
	auth     authCache

	uploadTimeout time.Duration
	lastSweep     atomic.Int64
}

// New returns a Server over opts.DB and opts.Blobs.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = DefaultUploadTimeout
	}
	if opts.ContentOrigin == "" {
		opts.ContentOrigin = "localhost:24816"
	}
	s := &Server{
		db:      opts.DB,
		blobs:   opts.Blobs,
		repos:   repository.NewStore(opts.DB),
		dists:   distribution.NewStore(opts.DB),
		remotes: remote.NewStore(opts.DB),
		tasks:   task.NewStore(opts.DB),
		origin:  opts.ContentOrigin,
		log:     opts.Logger,
		auth:    authCache{ok: map[[32]byte]time.Time{}},

		uploadTimeout: opts.UploadTimeout,
	}
	if r, ok := opts.Blobs.(storage.Redirector); ok && opts.RedirectBlobs {
		s.redirect = r
		s.expiry = opts.RedirectExpiry
		if s.expiry <= 0 {
			s.expiry = DefaultRedirectExpiry
		}
	}
	if opts.Registry.Staged == nil {
		opts.Registry.Staged = s.staged
	}
	s.registry = distribution.NewRegistry(s.dists, s.repos, opts.Blobs, opts.Registry)
	return s
}

// API returns the REST API handler (Pulp's /pulp/api/v3/).
func (s *Server) API() http.Handler { return s.apiRouter() }

// Content returns the registry handler (/v2/): pull for anyone; push and
// delete for REST API users (HTTP Basic).
func (s *Server) Content() http.Handler { return s.contentRouter() }
