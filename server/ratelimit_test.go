package server_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestSyncRateLimited: a sync whose upstream's quota runs out until later
// than its retry_patience fails its task with a description saying when
// to sync again and how far the sync got.
func TestSyncRateLimited(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.runner(t)
		host := regtest.StartInProcess(t)
		if _, err := regtest.PushImage(context.Background(), host, "busybox", "v1", regtest.ImageOpts{Seed: "quota", Layers: 2}); err != nil {
			t.Fatal(err)
		}
		// The tag list, whether the upstream has the referrers API, the
		// manifest and 2 of the 3 blobs; then an hour's wait.
		p := regtest.StartQuotaProxy(t, host, regtest.QuotaOptions{Limit: 5, Window: time.Hour, Headers: regtest.IETFQuotaHeaders})
		r := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "limited", "upstream_name": "busybox", "url": p.URL})
		if r.status != http.StatusCreated {
			t.Fatalf("create remote: %d %s", r.status, r.body)
		}
		rhref := r.json(t)["_href"].(string)
		_, repo := e.createRepo("limited")
		for _, bad := range []any{-1, "soon", 86401} {
			if r := e.call("POST", rhref+"sync/", map[string]any{"repository": repo, "retry_patience": bad}); r.status != http.StatusBadRequest || r.json(t)["retry_patience"] == nil {
				t.Errorf("retry_patience %v: %d %s, want 400 about retry_patience", bad, r.status, r.body)
			}
		}
		r = e.call("POST", rhref+"sync/", map[string]any{"repository": repo, "retry_patience": 5})
		if r.status != http.StatusAccepted {
			t.Fatalf("sync: %d %s", r.status, r.body)
		}
		tk := e.waitTask(r.json(t)["task"].(string))
		desc := ""
		if e, ok := tk["error"].(map[string]any); ok {
			desc, _ = e["description"].(string)
		}
		t.Log(desc)
		if tk["state"] != "failed" {
			t.Fatalf("task %v, want failed", tk)
		}
		var until time.Time
		if m := regexp.MustCompile(`used up until (\S+)`).FindStringSubmatch(desc); m != nil {
			until, _ = time.Parse(time.RFC3339, m[1])
		}
		if until.Before(time.Now().Add(59*time.Minute)) || until.After(time.Now().Add(time.Hour)) {
			t.Errorf("task error %q does not say the quota renews in an hour", desc)
		}
		for _, want := range []string{"rate limited by " + p.URL + "/busybox", "sync again after then to continue",
			"1 of 1 tags", "1 manifest fetched", "2 of 3 blobs downloaded"} {
			if !strings.Contains(desc, want) {
				t.Errorf("task error %q does not say %q", desc, want)
			}
		}
		if n := p.TooMany(); n != 0 {
			t.Errorf("the upstream answered 429 %d times", n)
		}
	})
}
