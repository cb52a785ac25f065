package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
)

// TestRemoteSecretsNeverEchoed: a password, client key or credentials in a
// proxy URL go in but never come back out of the REST API.
func TestRemoteSecretsNeverEchoed(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		r := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "p", "url": "http://127.0.0.1:1", "upstream_name": "x",
			"username": "alice", "password": "pw-s3cret", "proxy_url": "http://proxyuser:proxy-s3cret@127.0.0.1:3128"})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		href := r.json(t)["_href"].(string)
		for _, body := range [][]byte{r.body, e.call("GET", href, nil).body, e.call("GET", "/pulp/api/v3/remotes/docker/docker/", nil).body} {
			if s := string(body); strings.Contains(s, "pw-s3cret") || strings.Contains(s, "proxy-s3cret") {
				t.Errorf("a secret came back: %s", s)
			}
		}
		bad := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "q", "url": "http://127.0.0.1:1", "upstream_name": "x",
			"proxy_url": "http://proxyuser:proxy-s3cret@127.0.0.1:port"})
		if bad.status != http.StatusBadRequest || strings.Contains(string(bad.body), "proxy-s3cret") {
			t.Errorf("a bad proxy URL: %d %s; want 400 without the password", bad.status, bad.body)
		}
		if !strings.Contains(string(r.body), "proxyuser") {
			t.Errorf("the proxy URL's user is gone too: %s", r.body)
		}
	})
}
