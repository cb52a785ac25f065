package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
)

// TestBadBytesNever5xx: a NUL byte or invalid UTF-8 in names, filters,
// pagination markers and credentials is answered 400 or 401 (PostgreSQL
// refuses such text with an error that must not surface as a 500).
func TestBadBytesNever5xx(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		for _, bad := range []string{"a\x00b", "\xff\xfe", "x\xc3"} {
			q := url.QueryEscape(bad)
			for _, p := range []string{
				"/pulp/api/v3/repositories/?name=" + q,
				"/pulp/api/v3/remotes/docker/docker/?name=" + q,
				"/pulp/api/v3/docker-distributions/?name=" + q,
				"/pulp/api/v3/docker-distributions/?base_path=" + q,
				"/pulp/api/v3/content/docker/manifest-tags/?name=" + q,
				"/pulp/api/v3/content/docker/manifests/?digest=" + q,
				"/pulp/api/v3/content/docker/manifests/?media_type=" + q,
				"/pulp/api/v3/tasks/?state=" + q,
			} {
				if r := e.call("GET", p, nil); r.status >= 500 {
					t.Errorf("GET %s: %d %s", p, r.status, r.body)
				}
			}
			for _, body := range []map[string]any{{"name": bad}, {"name": "ok", "description": bad}} {
				if r := e.call("POST", "/pulp/api/v3/repositories/", body); r.status >= 500 {
					t.Errorf("POST repositories %q: %d %s", body, r.status, r.body)
				}
			}
			if r := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": bad, "url": "http://127.0.0.1:1", "upstream_name": "x"}); r.status >= 500 {
				t.Errorf("POST remote %q: %d %s", bad, r.status, r.body)
			}
			if r := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": bad, "base_path": "ok"}); r.status >= 500 {
				t.Errorf("POST distribution %q: %d %s", bad, r.status, r.body)
			}
			for _, p := range []string{"/v2/_catalog?n=5&last=" + q, "/v2/foo/tags/list?last=" + q} {
				resp, err := http.Get(e.content.URL + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					t.Errorf("GET %s: %s", p, resp.Status)
				}
			}
			req, _ := http.NewRequest("GET", e.api.URL+"/pulp/api/v3/repositories/", nil)
			req.SetBasicAuth(bad, bad)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("credentials %q: %s, want 401", bad, resp.Status)
			}
		}
	})
}
