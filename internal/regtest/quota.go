package regtest

import (
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// QuotaHeaders selects the rate-limit headers a QuotaProxy sends.
type QuotaHeaders int

const (
	// NoQuotaHeaders: none; the quota shows only as 429 with Retry-After.
	NoQuotaHeaders QuotaHeaders = iota
	// IETFQuotaHeaders: RateLimit-Limit, RateLimit-Remaining and
	// RateLimit-Reset (seconds until the window ends), as the IETF
	// draft's first versions define them.
	IETFQuotaHeaders
	// DockerHubQuotaHeaders: "ratelimit-limit: 100;w=21600" and
	// "ratelimit-remaining: 76;w=21600", Docker Hub's (the window in
	// seconds, no reset time).
	DockerHubQuotaHeaders
)

// QuotaOptions configure a QuotaProxy.
type QuotaOptions struct {
	// Limit is how many requests a window allows.
	Limit int
	// Window is how long a window lasts; it starts with its first request.
	Window time.Duration
	// Headers selects the rate-limit headers sent on every answer.
	Headers QuotaHeaders
	// OnlyManifestGETs makes the proxy count only manifest GETs, and send
	// the headers only with answers to manifest requests (GET and HEAD),
	// as Docker Hub does; otherwise every request counts.
	OnlyManifestGETs bool
}

// QuotaProxy is a reverse proxy in front of a registry that rations
// requests the way rate-limited registries do: every request counts
// against a quota of Limit per Window, answers carry the chosen headers,
// and a request over the quota is answered 429 with Retry-After (whole
// seconds until the window ends) and never reaches the registry. It counts
// what it answered, for tests to assert manners.
type QuotaProxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:<port>.
	URL  string
	opts QuotaOptions
	next http.Handler

	mu       sync.Mutex
	start    time.Time // of the current window; zero before any request
	used     int
	tooMany  int
	blobGETs map[string]int
}

// StartQuotaProxy serves a QuotaProxy in front of the registry at host,
// closed when the test ends.
func StartQuotaProxy(tb testing.TB, host string, opts QuotaOptions) *QuotaProxy {
	tb.Helper()
	u, err := url.Parse("http://" + host)
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &QuotaProxy{opts: opts, next: rp, blobGETs: map[string]int{}}
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *QuotaProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	manifest := strings.Contains(r.URL.Path, "/manifests/")
	counted := !p.opts.OnlyManifestGETs || manifest && r.Method == http.MethodGet
	p.mu.Lock()
	if p.start.IsZero() || now.Sub(p.start) >= p.opts.Window {
		p.start, p.used = now, 0
	}
	left := p.opts.Window - now.Sub(p.start)
	allowed := !counted || p.used < p.opts.Limit
	switch {
	case !allowed:
		p.tooMany++
	case counted:
		p.used++
	}
	remaining := p.opts.Limit - p.used
	p.mu.Unlock()

	if !p.opts.OnlyManifestGETs || manifest {
		p.headers(w.Header(), remaining, left)
	}
	if !allowed {
		w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(left)))
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"quota used up"}]}`, http.StatusTooManyRequests)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	p.next.ServeHTTP(rec, r)
	if r.Method == http.MethodGet && rec.status == http.StatusOK {
		if i := strings.LastIndex(r.URL.Path, "/blobs/"); i >= 0 {
			p.mu.Lock()
			p.blobGETs[r.URL.Path[i+len("/blobs/"):]]++
			p.mu.Unlock()
		}
	}
}

// headers sets the rate-limit headers of an answer.
func (p *QuotaProxy) headers(h http.Header, remaining int, left time.Duration) {
	switch p.opts.Headers {
	case IETFQuotaHeaders:
		h.Set("RateLimit-Limit", strconv.Itoa(p.opts.Limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(left)))
	case DockerHubQuotaHeaders:
		w := ";w=" + strconv.Itoa(ceilSeconds(p.opts.Window))
		// Docker Hub's names are lower case: set them as they are sent.
		h["ratelimit-limit"] = []string{strconv.Itoa(p.opts.Limit) + w}
		h["ratelimit-remaining"] = []string{strconv.Itoa(remaining) + w}
	}
}

func ceilSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}

// TooMany returns how many requests were answered 429.
func (p *QuotaProxy) TooMany() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tooMany
}

// BlobGETs returns, by digest, how many GETs of each blob were answered
// 200.
func (p *QuotaProxy) BlobGETs() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.blobGETs))
	for d, n := range p.blobGETs {
		out[d] = n
	}
	return out
}

// statusRecorder notes the status of an answer passed on.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush passes streaming on.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
