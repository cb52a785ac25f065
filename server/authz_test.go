package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

// TestAuthorizationMatrix checks every registry route for every kind of
// user against a public and a private distribution, and the REST API for
// anonymous, non-administrator and administrator users, against a table
// of expected status codes.
func TestAuthorizationMatrix(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		users := mooring.NewUsers(db)
		for _, u := range []struct{ name, role string }{{"norole", ""}, {"consumer", "consumer"}, {"collab", "collaborator"}, {"owner", "owner"}} {
			if _, err := users.Create(ctx, u.name, u.name+"-password", false); err != nil {
				t.Fatal(err)
			}
			for _, ns := range []string{"pub", "priv"} {
				if u.role != "" {
					if err := users.AddRole(ctx, mooring.Role{Username: u.name, Role: u.role, Kind: mooring.KindNamespace, Object: ns}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		digests := map[string]string{}
		for _, name := range []string{"pub/app", "priv/app"} {
			_, d := e.pushImage(name, "v1", name, "")
			digests[name] = d.String()
		}
		r := e.call("GET", "/pulp/api/v3/docker-distributions/?base_path=priv/app", nil)
		href := r.json(t)["results"].([]any)[0].(map[string]any)["_href"].(string)
		if r := e.call("PATCH", href, map[string]any{"private": true}); r.status != http.StatusOK {
			t.Fatalf("making priv/app private: %d %s", r.status, r.body)
		}

		creds := map[string]string{"anonymous": "", "norole": "norole-password", "consumer": "consumer-password",
			"collab": "collab-password", "owner": "owner-password", "admin": password}
		order := []string{"anonymous", "norole", "consumer", "collab", "owner", "admin"}
		do := func(user, method, path string) int {
			req, _ := http.NewRequest(method, e.content.URL+path, nil)
			if user != "anonymous" {
				req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+creds[user])))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// Expected codes, in the order of `order`.
		pull := map[string][]int{"pub/app": {200, 200, 200, 200, 200, 200}, "priv/app": {401, 403, 200, 200, 200, 200}}
		write := []int{401, 403, 403, 0, 0, 0} // 0: the route's own answer
		for _, name := range []string{"pub/app", "priv/app"} {
			for _, c := range []struct {
				method, path string
				want         []int
				allowed      int
			}{
				{"GET", "/v2/" + name + "/manifests/v1", pull[name], 200},
				{"HEAD", "/v2/" + name + "/manifests/" + digests[name], pull[name], 200},
				{"GET", "/v2/" + name + "/tags/list", pull[name], 200},
				{"GET", "/v2/" + name + "/referrers/" + digests[name], pull[name], 200},
				{"POST", "/v2/" + name + "/blobs/uploads/", write, 202},
				{"DELETE", "/v2/" + name + "/manifests/nope", write, 404},
				{"DELETE", "/v2/" + name + "/blobs/sha256:" + strings.Repeat("0", 64), write, 404},
			} {
				for i, user := range order {
					want := c.want[i]
					if want == 0 {
						want = c.allowed
					}
					if got := do(user, c.method, c.path); got != want {
						t.Errorf("%s %s %s: %d, want %d", user, c.method, c.path, got, want)
					}
				}
			}
		}
		// The catalog lists what each may pull.
		for user, want := range map[string][]string{"anonymous": {"pub/app"}, "norole": {"pub/app"}, "consumer": {"priv/app", "pub/app"}, "admin": {"priv/app", "pub/app"}} {
			req, _ := http.NewRequest("GET", e.content.URL+"/v2/_catalog", nil)
			if user != "anonymous" {
				req.SetBasicAuth(user, creds[user])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Repositories []string }
			jsonDecode(resp, &body)
			if !slices.Equal(body.Repositories, want) {
				t.Errorf("%s's catalog: %v, want %v", user, body.Repositories, want)
			}
		}
		// A new name: only those who may create under the namespace push.
		for i, user := range order {
			want := []int{401, 403, 403, 403, 202, 202}[i] // creator or owner on the namespace
			if got := do(user, "POST", fmt.Sprintf("/v2/pub/new%d/blobs/uploads/", i)); got != want {
				t.Errorf("%s pushing a new name under pub: %d, want %d", user, got, want)
			}
		}

		// REST: administrators only, but for a user's own record; to
		// others lists are empty and objects not found.
		for _, p := range []string{"/pulp/api/v3/repositories/", "/pulp/api/v3/remotes/docker/docker/", "/pulp/api/v3/docker-distributions/",
			"/pulp/api/v3/tasks/", "/pulp/api/v3/content/docker/manifests/", "/pulp/api/v3/users/"} {
			for user, want := range map[string]int{"anonymous": 401, "norole": 200, "admin": 200} {
				opt := func(r *http.Request) { r.SetBasicAuth(user, creds[user]) }
				if user == "anonymous" {
					opt = noAuth
				}
				r := e.call("GET", p, nil, opt)
				if r.status != want {
					t.Errorf("REST %s GET %s: %d, want %d", user, p, r.status, want)
				}
				if n, _ := r.json(t)["count"].(float64); user == "norole" && n != 0 {
					t.Errorf("REST norole GET %s lists %v objects, want none", p, n)
				}
			}
		}
		if got := e.call("GET", href, nil, as("norole", creds["norole"])).status; got != http.StatusNotFound {
			t.Errorf("REST norole reading a distribution: %d, want 404", got)
		}
		if got := e.call("GET", href, nil, as("consumer", creds["consumer"])).status; got != http.StatusOK {
			t.Errorf("REST consumer of its namespace reading the distribution: %d, want 200", got)
		}
		if got := e.call("POST", "/pulp/api/v3/repositories/", map[string]any{"name": "x"}, as("owner", creds["owner"])).status; got != http.StatusForbidden {
			t.Errorf("REST owner creating a repository: %d, want 403", got)
		}
		if got := e.call("GET", "/pulp/api/v3/users/owner/", nil, as("owner", creds["owner"])).status; got != http.StatusOK {
			t.Errorf("REST owner reading itself: %d", got)
		}

		// REST routes on each distribution and the repository it serves,
		// for every kind of user, public and private alike (REST follows
		// roles; private concerns pulls). Columns follow `order`; the
		// admin runs last so that what it deletes is gone for nobody else.
		restAs := func(user, method, path string, body any) int {
			opt := func(r *http.Request) { r.SetBasicAuth(user, creds[user]) }
			if user == "anonymous" {
				opt = noAuth
			}
			return e.call(method, path, body, opt).status
		}
		readC := []int{401, 404, 200, 200, 200, 200}
		writeC := []int{401, 404, 403, 202, 202, 202}
		ownC := []int{401, 404, 403, 403, 200, 200}
		for _, name := range []string{"pub/app", "priv/app"} {
			d := e.call("GET", "/pulp/api/v3/docker-distributions/?base_path="+name, nil).json(t)["results"].([]any)[0].(map[string]any)
			dist, repo := d["_href"].(string), d["repository"].(string)
			for _, c := range []struct {
				method, path string
				body         any
				want         []int
			}{
				{"GET", dist, nil, readC},
				{"GET", dist + "list_roles/", nil, readC},
				{"PATCH", dist, map[string]any{"private": name == "priv/app"}, ownC},
				{"GET", repo, nil, readC},
				{"GET", repo + "versions/", nil, readC},
				{"GET", repo + "versions/1/", nil, readC},
				{"GET", "/pulp/api/v3/content/docker/manifests/?repository_version=" + repo + "versions/1/", nil, []int{401, 200, 200, 200, 200, 200}},
				{"POST", repo + "modify/", map[string]any{"add_content_units": []string{}}, writeC},
				{"POST", repo + "copy_tags/", map[string]any{"source_repository": repo}, writeC},
				{"PATCH", repo, map[string]any{"description": "x"}, ownC},
			} {
				for i, user := range order {
					if got := restAs(user, c.method, c.path, c.body); got != c.want[i] {
						t.Errorf("REST %s %s %s: %d, want %d", user, c.method, c.path, got, c.want[i])
					}
				}
			}
		}
	})
}

func jsonDecode(resp *http.Response, v any) {
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
}
