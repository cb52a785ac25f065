package remote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/remote"
)

// tokenAuth guards a registry the way Docker Hub, quay and gcr do: a
// request without a valid bearer token gets a 401 with a Bearer challenge
// pointing at /token, which hands out tokens for the user's credentials.
// A token expires lifetime after it is issued (never when zero); delay
// slows every guarded request, so that a sync outlives its tokens.
type tokenAuth struct {
	h          http.Handler
	user, pass string
	lifetime   time.Duration
	delay      time.Duration

	mu        sync.Mutex
	issued    int
	expired   int
	scopes    []string
	expiry    map[string]time.Time
	anonymous int
}

func (a *tokenAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		a.token(w, r)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	exp, known := a.expiry[tok]
	valid := ok && known && (exp.IsZero() || time.Now().Before(exp))
	if ok && known && !valid {
		a.expired++
	}
	a.mu.Unlock()
	time.Sleep(a.delay)
	if !valid {
		scope := ""
		if name, _, found := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/"); found {
			scope = fmt.Sprintf(`,scope="repository:%s:pull"`, name)
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test-registry"%s`, r.Host, scope))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return
	}
	a.h.ServeHTTP(w, r)
}

func (a *tokenAuth) token(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok {
		a.anonymous++
	}
	if a.user != "" && (user != a.user || pass != a.pass) {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("service") != "test-registry" {
		http.Error(w, "wrong service", http.StatusBadRequest)
		return
	}
	a.issued++
	a.scopes = append(a.scopes, r.URL.Query()["scope"]...)
	tok := fmt.Sprintf("token-%d", a.issued)
	if a.expiry == nil {
		a.expiry = map[string]time.Time{}
	}
	var exp time.Time
	if a.lifetime > 0 {
		exp = time.Now().Add(a.lifetime)
	}
	a.expiry[tok] = exp
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 60})
}

// basicAuth guards a registry with HTTP basic authentication.
func basicAuth(h http.Handler, user, pass string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestSyncTokenAuth(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db)
		host, _, _ := upstream(t)
		// host serves the registry unguarded for pushing; sync through auth.
		want := pushSample(t, host, "team/app")
		a := &tokenAuth{h: proxyTo(t, host), user: "alice", pass: "s3cret", lifetime: 100 * time.Millisecond, delay: 15 * time.Millisecond}
		url := serve(t, a)

		r := remote.New("up", url, "team/app")
		if _, err := f.syncer.Sync(context.Background(), r, f.repoID, remote.SyncOptions{}); err == nil {
			t.Fatal("sync without credentials succeeded")
		} else if !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
			t.Errorf("err = %v, want it to say unauthorized", err)
		}
		r.Username, r.Password = "alice", "s3cret"
		r.DownloadConcurrency = 1 // a slow sync, so tokens expire during it
		res := f.sync(t, r, remote.SyncOptions{})
		if res.Version == nil || f.tags(t)["multi"] != want["multi"].Digest {
			t.Fatalf("authenticated sync: version %v, tags %v", res.Version, f.tags(t))
		}
		// Tokens expired mid-sync and were fetched again; every token
		// asked for pull on the repository.
		if a.expired == 0 || a.issued < 2 {
			t.Errorf("%d requests with expired tokens, %d tokens issued: want tokens to expire and be refreshed", a.expired, a.issued)
		}
		for _, s := range a.scopes {
			if s != "repository:team/app:pull" {
				t.Errorf("token requested for scope %q", s)
			}
		}
	})
}

func TestSyncAnonymousToken(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, _, _ := upstream(t)
	pushSample(t, host, "library/busybox")
	a := &tokenAuth{h: proxyTo(t, host)}
	res := f.sync(t, remote.New("up", serve(t, a), "library/busybox"), remote.SyncOptions{})
	if res.Tags != 3 || a.anonymous == 0 {
		t.Errorf("anonymous token sync: %d tags, %d anonymous token requests", res.Tags, a.anonymous)
	}
}

func TestSyncBasicAuth(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, _, _ := upstream(t)
	pushSample(t, host, "team/app")
	url := serve(t, basicAuth(proxyTo(t, host), "bob", "pw"))
	r := remote.New("up", url, "team/app")
	r.Username, r.Password = "bob", "wrong"
	if _, err := f.syncer.Sync(context.Background(), r, f.repoID, remote.SyncOptions{}); err == nil {
		t.Error("sync with a wrong password succeeded")
	}
	r.Password = "pw"
	if res := f.sync(t, r, remote.SyncOptions{}); res.Tags != 3 {
		t.Errorf("basic auth sync: %d tags", res.Tags)
	}
}
