// Package registryapi serves the OCI distribution spec's /v2/ API over
// HTTP for the distributions of one database: pull for anyone, and push,
// delete and uploads for whoever an Authenticator lets in. It is an
// http.Handler of its own, to mount on any mux; handlers parse the request,
// make one call to distribution.Registry or push.Service and encode the
// answer. Errors are rendered from errdef's registry codes.
package registryapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/push"
	"github.com/mooring-dev/mooring/storage"
)

// Access is what a request wants to do: pull, push (uploads and manifest
// PUTs), delete, or "" for the API version check. Name is the repository
// name (base path); empty for the version check and the catalog.
type Access struct {
	Name   string
	Action string
}

// Actions an Access may name.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	// ActionCatalog is listing the catalog (/v2/_catalog); Name is empty.
	ActionCatalog = "catalog"
)

// Authenticator decides who may do what. The registry asks it before
// every pull, push, upload and delete, before listing the catalog, and on
// the API version check (GET /v2/, Action ""), whose 401 tells clients
// such as podman and skopeo where and how to authenticate.
type Authenticator interface {
	// Authenticate returns nil when r may do a; otherwise an error wrapping
	// errdef.ErrUnauthenticated (answered 401 with the challenge) or
	// errdef.ErrDenied (403).
	Authenticate(r *http.Request, a Access) error
}

// AuthenticatorFunc is a func that is an Authenticator.
type AuthenticatorFunc func(r *http.Request, a Access) error

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request, a Access) error { return f(r, a) }

// Options configure the handler. Zero fields take the documented defaults.
type Options struct {
	// Auth decides who may push and delete. Nil: nobody; pushes and
	// deletes are answered 401, pulls and GET /v2/ work anonymously.
	Auth Authenticator
	// Challenge is the WWW-Authenticate header of a 401. Default
	// `Basic realm="Mooring"`.
	Challenge string
	// RedirectBlobs makes a blob GET answer 307 Temporary Redirect to a URL
	// of the blob in the backing store (distribution spec, "Pulling
	// blobs"), once the served version is known to hold the blob, so that
	// blob bytes do not pass through the server. It needs a blob store
	// that is a storage.Redirector; otherwise blobs stream as by default.
	// HEAD, ranges S3 would mishandle, and manifests fetched as blobs are
	// always answered here.
	RedirectBlobs bool
	// RedirectExpiry is how long a redirect URL stays valid. Default 20
	// minutes, as CNCF distribution's S3 driver uses.
	RedirectExpiry time.Duration
	// Logger receives failed requests (5xx); nil discards.
	Logger *slog.Logger
	// MinBodyRate and BodyWindow guard request bodies (uploads, manifest
	// PUTs) against clients that trickle: each BodyWindow must bring
	// MinBodyRate bytes a second, or the connection is closed. Defaults
	// DefaultMinBodyRate (1 KiB/s) and DefaultBodyWindow (30s); a
	// negative MinBodyRate turns the guard off.
	MinBodyRate int64
	BodyWindow  time.Duration
}

// DefaultRedirectExpiry is Options.RedirectExpiry's default.
const DefaultRedirectExpiry = 20 * time.Minute

// handler holds what every route uses.
type handler struct {
	registry *distribution.Registry
	push     *push.Service
	redirect storage.Redirector // nil: stream blobs
	expiry   time.Duration
	opts     Options
}

// New returns the /v2/ API over registry (pull) and pushes (push, delete
// and uploads; nil refuses them all with 401). blobs is the store both
// read from; it is used only to redirect blob GETs.
func New(registry *distribution.Registry, pushes *push.Service, blobs storage.Driver, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBodyRate == 0 {
		opts.MinBodyRate = DefaultMinBodyRate
	}
	if opts.BodyWindow <= 0 {
		opts.BodyWindow = DefaultBodyWindow
	}
	if opts.Challenge == "" {
		opts.Challenge = `Basic realm="Mooring"`
	}
	h := &handler{registry: registry, push: pushes, opts: opts}
	if rd, ok := blobs.(storage.Redirector); ok && opts.RedirectBlobs {
		h.redirect = rd
		h.expiry = opts.RedirectExpiry
		if h.expiry <= 0 {
			h.expiry = DefaultRedirectExpiry
		}
	}
	return h.router()
}

// authorize asks the Authenticator whether r may do a; without one only
// the version check passes.
func (h *handler) authorize(r *http.Request, a Access) error {
	if h.opts.Auth == nil {
		if a.Action == "" || a.Action == ActionPull || a.Action == ActionCatalog {
			return nil
		}
		return errdef.New(errdef.ErrUnauthorized, "this registry takes no pushes or deletes")
	}
	if (a.Action == ActionPush || a.Action == ActionDelete) && h.push == nil {
		return errdef.New(errdef.ErrRegistryUnsupported, "this registry takes no pushes or deletes")
	}
	return h.opts.Auth.Authenticate(r, a)
}

// identity is who a request is from, as its Authenticator found.
type identity struct{ user string }

type identityKey struct{}

// SetUser records, for an Authenticator, who request r is from; the
// registry then knows its pusher (push.WithPusher) and what it may see in
// the catalog.
func SetUser(r *http.Request, user string) {
	if id, ok := r.Context().Value(identityKey{}).(*identity); ok {
		id.user = user
	}
}

// User returns whom the Authenticator said the request of ctx is from,
// "" for anonymous.
func User(ctx context.Context) string {
	if id, ok := ctx.Value(identityKey{}).(*identity); ok {
		return id.user
	}
	return ""
}

// CatalogFilter is an Authenticator that can say which repository names
// a request may see in the catalog.
type CatalogFilter interface {
	Visible(r *http.Request, names []string) ([]string, error)
}

// pushContext is r's context naming its user as the pusher.
func pushContext(r *http.Request) context.Context {
	return push.WithPusher(r.Context(), User(r.Context()))
}

// handlerFunc is what every route runs: parse, one call, encode; the
// error is rendered by serve.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// serve wraps a route: the API version header and errors in the spec's
// JSON shape.
func (h *handler) serve(name string, f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, &identity{}))
		if h.opts.MinBodyRate > 0 && r.ContentLength != 0 && (r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodPost) {
			defer GuardBody(w, r, h.opts.MinBodyRate, h.opts.BodyWindow)()
		}
		err := checkQuery(r.URL.Query())
		if err == nil {
			err = f(w, r)
		}
		if err != nil {
			h.renderError(w, r, name, err)
		}
	})
}

// renderError answers err with its registry code and status (errdef.Code);
// the text of a 5xx is logged, not shown.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, route string, err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errdef.New(errdef.ErrInvalid, "the request body arrived too slowly")
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestTimeout, map[string]any{"errors": []map[string]any{{"code": "UNKNOWN", "message": err.Error(), "detail": nil}}})
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client has gone, or was too slow to wait for
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errdef.New(errdef.ErrManifestTooLarge, "request body too large")
	}
	status, code, msg := errdef.Status(err), errdef.RegistryCode(err), err.Error()
	switch {
	case status == http.StatusInternalServerError:
		h.opts.Logger.ErrorContext(r.Context(), "registry request failed", "route", route, "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal server error"
	case status > 500:
		// An upstream failed (502, 504): the message says which, for the
		// client too.
		h.opts.Logger.WarnContext(r.Context(), "registry request failed upstream", "route", route, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var ce *challengeError
	switch {
	case errors.As(err, &ce):
		w.Header().Set("WWW-Authenticate", ce.header)
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", h.opts.Challenge)
	}
	SetRetryAfter(w, err)
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"code": code, "message": msg, "detail": nil}}})
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// writeJSON encodes v as the response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
	return nil
}

// checkQuery refuses query parameters that are not text a database can
// hold: a NUL character or invalid UTF-8.
func checkQuery(q url.Values) error {
	for k, vs := range q {
		for _, v := range vs {
			if strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
				code := errdef.ErrInvalid
				if k == "n" || k == "last" {
					code = errdef.ErrPaginationInvalid
				}
				return errdef.New(code, "query parameter %q is not valid UTF-8 text without NUL characters", k)
			}
		}
	}
	return nil
}

// SetRetryAfter sends the Retry-After header (whole seconds, at least 1)
// of an *errdef.RetryAfter in err's chain, if there is one.
func SetRetryAfter(w http.ResponseWriter, err error) {
	var ra *errdef.RetryAfter
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ra.After+time.Second-1)/time.Second))))
	}
}
