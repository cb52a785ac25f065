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
	"log/slog"
	"net/http"
	"time"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// Options configure a Server.
type Options struct {
	// Mooring is the opened SDK the server wraps.
	Mooring *mooring.Mooring
	// ContentOrigin is host:port of the registry service, shown in each
	// distribution's registry_path. Default "localhost:24816".
	ContentOrigin string
	// RedirectBlobs and RedirectExpiry: see registryapi.Options.
	RedirectBlobs  bool
	RedirectExpiry time.Duration
	// Logger receives structured logs; nil discards.
	Logger *slog.Logger
	// Policy decides what registry users may do; nil is the roles of the
	// opened Mooring (mooring.RolePolicy).
	Policy registryapi.Policy
	// BodyWindow is how long a request body may take per 1 KiB/s of it
	// (registryapi.GuardBody); default registryapi.DefaultBodyWindow.
	BodyWindow time.Duration
	// DisableMetrics turns off /metrics and the per-request metrics of
	// both services (mooring.Metrics.ObserveRequest).
	DisableMetrics bool
	// LayoutPaths are the directories of the server's machine inside which
	// OCI layouts may be exported and imported through the REST API; none
	// (the default) refuses every export and import.
	LayoutPaths []string
}

// Server wraps an opened Mooring in the two HTTP services.
type Server struct {
	m       *mooring.Mooring
	blobs   storage.Driver
	repos   *repository.Store
	dists   *distribution.Store
	remotes *remote.Store
	tasks   *task.Store
	users   *mooring.Users
	origin  string
	log     *slog.Logger
	opts    Options
}

// New returns a Server over opts.Mooring.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Every line logged with a request's context names the request.
	opts.Logger = slog.New(requestIDHandler{opts.Logger.Handler()})
	if opts.ContentOrigin == "" {
		opts.ContentOrigin = "localhost:24816"
	}
	m := opts.Mooring
	return &Server{
		m:       m,
		blobs:   m.Blobs,
		repos:   m.Repositories,
		dists:   m.Distributions,
		remotes: m.Remotes,
		tasks:   m.Tasks,
		users:   m.Users,
		origin:  opts.ContentOrigin,
		log:     opts.Logger,
		opts:    opts,
	}
}

// API returns the REST API handler (Pulp's /pulp/api/v3/), with
// /metrics, /healthz and /readyz beside it.
func (s *Server) API() http.Handler { return s.withOps("api", s.apiRouter(), apiRoute) }

// Content returns the registry handler (/v2/): pull for anyone; push and
// delete for REST API users (HTTP Basic); with /metrics, /healthz and
// /readyz beside it.
func (s *Server) Content() http.Handler {
	return s.withOps("content", s.registryHandler(), registryRoute)
}

// registryHandler is the registry of the opened Mooring with token
// authentication (Bearer challenges, the token endpoint at /token/, HTTP
// Basic still accepted) over the REST API's users.
func (s *Server) registryHandler() http.Handler {
	var auth registryapi.Authenticator
	policy := s.opts.Policy
	if policy == nil {
		policy = s.m.Policy()
	}
	ta, err := s.m.TokenAuth(context.Background(), policy)
	if err != nil {
		// The key could not be read or made: HTTP Basic alone.
		s.log.Error("registry token authentication unavailable; HTTP Basic only", "err", err)
		auth = registryapi.AuthenticatorFunc(s.basicOnly)
	} else {
		auth = ta
	}
	return s.m.RegistryHandler(registryapi.Options{
		Auth:           auth,
		RedirectBlobs:  s.opts.RedirectBlobs,
		RedirectExpiry: s.opts.RedirectExpiry,
		BodyWindow:     s.opts.BodyWindow,
		Logger:         s.log,
	})
}

func (s *Server) bodyWindow() time.Duration {
	if s.opts.BodyWindow > 0 {
		return s.opts.BodyWindow
	}
	return registryapi.DefaultBodyWindow
}
