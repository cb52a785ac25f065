package server_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
)

// TestBadRequestsNever5xx throws malformed requests at both services: none
// may be answered with a server error (call and get fail the test on 5xx).
func TestBadRequestsNever5xx(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		f := newRegistryFixture(t, e)
		bodies := []any{"", "null", "[]", "{}", `{"name":`, `"str"`, "1e999", `{"name":{"a":1}}`, `{"repository":"/pulp/api/v3/repositories/` + strings.Repeat("9", 36) + `/"}`,
			`{"name":"x","base_path":"x","repository_version":"/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/versions/999999999/"}`,
			`{"state":"canceled"}`, `{"limit":-1}`, "\xff\xfe", strings.Repeat("[", 10000)}
		paths := []string{
			"/pulp/api/v3/repositories/", f.repoHref, f.repoHref + "versions/", f.repoHref + "versions/999999999/",
			"/pulp/api/v3/remotes/docker/docker/", "/pulp/api/v3/remotes/docker/docker/00000000-0000-0000-0000-000000000000/sync/",
			"/pulp/api/v3/docker-distributions/", "/pulp/api/v3/tasks/", "/pulp/api/v3/tasks/00000000-0000-0000-0000-000000000000/",
			"/pulp/api/v3/content/docker/manifests/?repository_version=%zz", "/pulp/api/v3/content/docker/blobs/?limit=99999999999999999999",
			"/pulp/api/v3/repositories/?offset=99999999999", "/pulp/api/v3/tasks/?limit=1&offset=5000000000",
		}
		for _, p := range paths {
			for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
				for _, b := range bodies {
					if m == "GET" || m == "DELETE" {
						b = nil
					}
					e.call(m, p, b)
					if b == nil {
						break
					}
				}
			}
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		alphabet := "abc/:._-%09AZ?&=#"
		for range 300 {
			var sb strings.Builder
			for range rnd.IntN(40) {
				sb.WriteByte(alphabet[rnd.IntN(len(alphabet))])
			}
			for _, prefix := range []string{"/v2/", "/v2/lib/foo/manifests/", "/v2/lib/foo/blobs/", "/v2/lib/foo/tags/list?n="} {
				req, err := http.NewRequest("GET", e.content.URL+prefix+sb.String(), nil)
				if err != nil {
					continue
				}
				req.Header.Set("Accept", sb.String())
				req.Header.Set("Range", "bytes="+sb.String())
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					t.Errorf("GET %s: %d", req.URL, resp.StatusCode)
				}
			}
		}
	})
}
