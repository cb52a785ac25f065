package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Operational endpoints, served on both ports without credentials.
const (
	metricsPath = "/metrics"
	healthPath  = "/healthz"
	readyPath   = "/readyz"
)

// RequestIDHeader carries a request's id: taken from the request when a
// proxy set a plausible one, else made up; always sent back, and logged
// with every line the request logs.
const RequestIDHeader = "X-Request-Id"

// reqInfo is what the operational wrapper learns about a request as it is
// served: its id, and the name of the route that answered it.
type reqInfo struct {
	id    string
	route string
}

type reqInfoKey struct{}

// setRoute records the name of the route answering r, for metrics and the
// request log.
func setRoute(r *http.Request, name string) {
	if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		info.route = name
	}
}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return info.id
	}
	return ""
}

var (
	reqPrefix = func() string {
		var b [4]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	reqSeq atomic.Uint64
)

// requestID returns the id a request sent, if it is short and plain, or
// a new one unique to this process's life.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); id != "" && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") == "" {
		return id
	}
	return reqPrefix + "-" + strconv.FormatUint(reqSeq.Add(1), 36)
}

// withOps wraps a service's handler: /healthz, /readyz and /metrics
// answered without credentials and without a log line, and for every
// other request an id, metrics by route (named by setRoute, else by
// route(r)) and a debug log line.
func (s *Server) withOps(service string, h http.Handler, route func(*http.Request) string) http.Handler {
	var metrics http.Handler
	if !s.opts.DisableMetrics {
		metrics = s.m.Metrics.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case healthPath:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "ok\n")
			return
		case readyPath:
			s.ready(w, r)
			return
		case metricsPath:
			if metrics != nil {
				metrics.ServeHTTP(w, r)
				return
			}
		}
		start := time.Now()
		info := &reqInfo{id: requestID(r)}
		w.Header().Set(RequestIDHeader, info.id)
		rec := &recorder{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if info.route == "" {
			info.route = route(r)
		}
		elapsed := time.Since(start)
		if !s.opts.DisableMetrics {
			s.m.Metrics.ObserveRequest(service, info.route, r.Method, rec.status, rec.bytes, elapsed)
		}
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.DebugContext(r.Context(), "request", "service", service, "route", info.route, "method", r.Method,
				"path", r.URL.Path, "status", rec.status, "bytes", rec.bytes, "duration", elapsed)
		}
	})
}

// ready answers 200 when the database and storage answer, else 503 saying
// which does not (without the error, which may name hosts).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	h := s.m.Check(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if h.Ready() {
		io.WriteString(w, "ok\n")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	// Probes come every few seconds: say why once a minute at most.
	now := time.Now().UnixNano()
	logIt := false
	if last := lastReadyLog.Load(); now-last > int64(time.Minute) {
		logIt = lastReadyLog.CompareAndSwap(last, now)
	}
	if h.Database != nil {
		io.WriteString(w, "database: not answering\n")
		if logIt {
			s.log.WarnContext(r.Context(), "not ready: the database does not answer", "err", h.Database)
		}
	}
	if h.Storage != nil {
		io.WriteString(w, "storage: not answering\n")
		if logIt {
			s.log.WarnContext(r.Context(), "not ready: blob storage does not answer", "err", h.Storage)
		}
	}
}

// lastReadyLog is when a failed readiness probe was last logged.
var lastReadyLog atomic.Int64

// registryRoute names the registry route of a /v2/ request by its path.
func registryRoute(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return "base"
	case p == "/v2/_catalog":
		return "catalog"
	case !strings.HasPrefix(p, "/v2/"):
		return "other"
	case strings.HasSuffix(p, "/tags/list"):
		return "tags"
	}
	i := strings.LastIndex(p, "/manifests/")
	j := strings.LastIndex(p, "/blobs/")
	k := strings.LastIndex(p, "/referrers/")
	switch {
	case i > j && i > k:
		return "manifests"
	case j > k && strings.HasPrefix(p[j:], "/blobs/uploads"):
		return "uploads"
	case j > k:
		return "blobs"
	case k >= 0:
		return "referrers"
	}
	return "other"
}

// apiRoute names an API request no route claimed.
func apiRoute(*http.Request) string { return "unmatched" }

// recorder is a ResponseWriter that notes the status and the body bytes
// written, and keeps what the one it wraps can do: ReadFrom (sendfile),
// Flush, and the rest through Unwrap (http.ResponseController).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(w.ResponseWriter, src)
	}
	w.bytes += n
	return n, err
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestIDHandler adds the request id to every record logged with the
// context of a request.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id := RequestID(ctx); id != "" {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// publicRoutes are the REST routes answered without credentials.
var publicRoutes = map[string]bool{"status": true}
