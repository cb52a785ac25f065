package remote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// Helpers for testing one stage of a sync alone.

// stageRequests counts the requests an upstream gets by method and kind
// ("GET manifests", "HEAD manifests", "GET blobs"), and the most in flight
// at once.
type stageRequests struct {
	h     http.Handler
	delay time.Duration

	mu                  sync.Mutex
	n                   map[string]int
	inFlight, maxFlight int
}

func (c *stageRequests) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	for _, k := range []string{"manifests", "blobs", "tags"} {
		if strings.Contains(r.URL.Path, "/"+k+"/") {
			key = r.Method + " " + k
		}
	}
	c.mu.Lock()
	c.n[key]++
	c.inFlight++
	c.maxFlight = max(c.maxFlight, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	time.Sleep(c.delay) // lets concurrent requests overlap
	c.h.ServeHTTP(w, r)
}

func (c *stageRequests) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *stageRequests) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.maxFlight = map[string]int{}, 0
}

// stageUpstream starts an in-process registry; it returns its host, to
// push to directly, and a counted URL to sync from.
func stageUpstream(t *testing.T) (host, url string, reqs *stageRequests) {
	t.Helper()
	h := regtest.InProcessHandler()
	direct := httptest.NewServer(h)
	t.Cleanup(direct.Close)
	reqs = &stageRequests{h: h, n: map[string]int{}}
	counted := httptest.NewServer(reqs)
	t.Cleanup(counted.Close)
	return strings.TrimPrefix(direct.URL, "http://"), counted.URL, reqs
}

// stageSyncer returns a Syncer over SQLite and a temporary blob store, and
// an empty repository's ID.
func stageSyncer(t *testing.T) (*Syncer, string) {
	t.Helper()
	ctx := context.Background()
	db := dbtest.Open(t, "sqlite")
	if err := repository.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repos := repository.NewStore(db)
	repo, err := repos.CreateRepository(ctx, "stages", "")
	if err != nil {
		t.Fatal(err)
	}
	return &Syncer{Repos: repos, Blobs: blobs, Retry: RetryPolicy{Attempts: 2, MinWait: time.Millisecond}}, repo.ID
}

// stageRun starts a run of s syncing r into repoID, as Sync does before
// its first stage: the repository's latest version is read now.
func stageRun(t *testing.T, s *Syncer, r *Remote, repoID string) *syncRun {
	t.Helper()
	run, err := s.newRun(context.Background(), r, repoID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func push(t *testing.T, host, tag string, o regtest.ImageOpts) {
	t.Helper()
	if _, err := regtest.PushImage(context.Background(), host, "team/app", tag, o); err != nil {
		t.Fatal(err)
	}
}
