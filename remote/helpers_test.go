package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// fixture is a repository store, a blob store and an empty repository.
type fixture struct {
	repos  *repository.Store
	blobs  storage.Driver
	repoID string
	syncer *remote.Syncer
}

// fastRetry keeps retries quick in tests.
var fastRetry = remote.RetryPolicy{Attempts: 4, MinWait: 5 * time.Millisecond, MaxWait: 20 * time.Millisecond}

func newFixture(t testing.TB, db *bun.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	if err := repository.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := remote.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repos := repository.NewStore(db)
	r, err := repos.CreateRepository(ctx, "mirror", "")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{repos: repos, blobs: blobs, repoID: r.ID, syncer: &remote.Syncer{Repos: repos, Blobs: blobs, Retry: fastRetry}}
}

func (f *fixture) sync(t testing.TB, r *remote.Remote, opts remote.SyncOptions) *remote.SyncResult {
	t.Helper()
	res, err := f.syncer.Sync(context.Background(), r, f.repoID, opts)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return res
}

// tags returns tag name -> digest in the latest version.
func (f *fixture) tags(t *testing.T) map[string]digest.Digest {
	t.Helper()
	out := map[string]digest.Digest{}
	for _, c := range f.units(t, content.TypeManifestTag, content.TypeManifestListTag) {
		out[c.Name] = c.Digest
	}
	return out
}

// units lists the latest version's units of the given types.
func (f *fixture) units(t *testing.T, types ...content.Type) []repository.Content {
	t.Helper()
	ctx := context.Background()
	repo, err := f.repos.Repository(ctx, f.repoID)
	if err != nil {
		t.Fatal(err)
	}
	var out []repository.Content
	for _, typ := range types {
		page, _, err := f.repos.ListContent(ctx, repository.ContentFilter{Type: typ,
			In: &repository.VersionRef{RepositoryID: f.repoID, Number: repo.LatestVersion}, Page: repository.Page{Limit: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
	}
	return out
}

func (f *fixture) latest(t *testing.T) int {
	t.Helper()
	repo, err := f.repos.Repository(context.Background(), f.repoID)
	if err != nil {
		t.Fatal(err)
	}
	return repo.LatestVersion
}

// checkBlob asserts the blob is stored with exactly the bytes of want.
func (f *fixture) checkBlob(t *testing.T, d digest.Digest, want io.Reader) {
	t.Helper()
	rc, err := f.blobs.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	w, _ := io.ReadAll(want)
	if string(got) != string(w) {
		t.Errorf("blob %s: stored %d bytes differ from the upstream's %d", d, len(got), len(w))
	}
}

// counter counts requests by method and kind ("manifests", "blobs",
// "tags") and passes them on.
type counter struct {
	mu sync.Mutex
	n  map[string]int
	h  http.Handler
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n[r.Method+" "+kind(r.URL.Path)]++
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

func kind(path string) string {
	for _, k := range []string{"/manifests/", "/blobs/", "/tags/list"} {
		if strings.Contains(path, k) {
			return strings.Trim(k, "/")
		}
	}
	return path
}

// serve starts an httptest server for h and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// upstream starts an in-process registry behind a request counter and
// returns its host (for pushing directly) and the counted URL (to sync
// from).
func upstream(t *testing.T) (host string, url string, c *counter) {
	t.Helper()
	h := regtest.InProcessHandler()
	host = strings.TrimPrefix(serve(t, h), "http://")
	c = &counter{n: map[string]int{}, h: h}
	return host, serve(t, c), c
}

func keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// recorder captures a response to rewrite it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *recorder) WriteHeader(code int)        { r.status = code }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// proxyTo returns a handler forwarding to the registry at host.
func proxyTo(t *testing.T, host string) http.Handler {
	t.Helper()
	u, err := url.Parse("http://" + host)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorLog = log.New(io.Discard, "", 0)
	return p
}
