package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

// TestRESTRoles: through the REST API a user sees and changes what its
// roles give it, and nothing else exists for it.
func TestRESTRoles(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		users := mooring.NewUsers(db)
		for _, u := range []string{"collab", "maker"} {
			if _, err := users.Create(ctx, u, u+"-password", false); err != nil {
				t.Fatal(err)
			}
		}
		if err := users.AddRole(ctx, mooring.Role{Username: "collab", Role: mooring.RoleCollaborator, Kind: mooring.KindNamespace, Object: "team"}); err != nil {
			t.Fatal(err)
		}
		if err := users.AddRole(ctx, mooring.Role{Username: "maker", Role: mooring.RoleCreator, Kind: mooring.KindGlobal}); err != nil {
			t.Fatal(err)
		}
		_, teamRepo := e.createRepo("team-repo")
		_, hidden := e.createRepo("hidden")
		teamDist := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "team", "base_path": "team/app", "repository": teamRepo}).json(t)["_href"].(string)
		otherDist := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "other", "base_path": "other/app", "repository": hidden}).json(t)["_href"].(string)
		rem := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "up", "url": "http://127.0.0.1:1", "upstream_name": "x"}).json(t)["_href"].(string)
		adminTask := e.call("POST", rem+"sync/", map[string]any{"repository": hidden}).json(t)["task"].(string)

		collab := as("collab", "collab-password")
		count := func(path string) float64 {
			t.Helper()
			r := e.call("GET", path, nil, collab)
			if r.status != http.StatusOK {
				t.Fatalf("collab GET %s: %d %s", path, r.status, r.body)
			}
			return r.json(t)["count"].(float64)
		}
		if n := count("/pulp/api/v3/repositories/"); n != 1 {
			t.Errorf("collab sees %v repositories, want 1 (team-repo)", n)
		}
		if n := count("/pulp/api/v3/docker-distributions/"); n != 1 {
			t.Errorf("collab sees %v distributions, want 1", n)
		}
		if n := count("/pulp/api/v3/content/docker/manifests/"); n != 0 {
			t.Errorf("collab lists %v manifests of all repositories, want none", n)
		}
		for _, c := range []struct {
			method, path string
			body         any
			want         int
		}{
			{"GET", teamRepo, nil, 200},
			{"GET", hidden, nil, 404},
			{"GET", teamRepo + "versions/", nil, 200},
			{"GET", hidden + "versions/", nil, 404},
			{"GET", "/pulp/api/v3/content/docker/manifests/?repository_version=" + teamRepo + "versions/0/", nil, 200},
			{"POST", teamRepo + "modify/", map[string]any{"add_content_units": []string{}}, 202},
			{"POST", hidden + "modify/", map[string]any{"add_content_units": []string{}}, 404},
			{"DELETE", teamRepo, nil, 403},
			{"POST", "/pulp/api/v3/repositories/", map[string]any{"name": "mine"}, 403},
			{"GET", teamDist, nil, 200},
			{"GET", otherDist, nil, 404},
			{"PATCH", teamDist, map[string]any{"private": true}, 403},
			{"GET", rem, nil, 404},
			{"POST", rem + "sync/", map[string]any{"repository": teamRepo}, 202},
			{"POST", rem + "sync/", map[string]any{"repository": hidden}, 400},
			{"GET", adminTask, nil, 404},
			{"POST", "/pulp/api/v3/orphans/cleanup/", map[string]any{}, 403},
		} {
			if r := e.call(c.method, c.path, c.body, collab); r.status != c.want {
				t.Errorf("collab %s %s: %d %s, want %d", c.method, c.path, r.status, r.body, c.want)
			}
		}
		if n := count("/pulp/api/v3/tasks/"); n != 2 {
			t.Errorf("collab sees %v tasks, want its own 2", n)
		}
		// A global creator creates a repository and owns it.
		maker := as("maker", "maker-password")
		r := e.call("POST", "/pulp/api/v3/repositories/", map[string]any{"name": "made"}, maker)
		if r.status != http.StatusCreated {
			t.Fatalf("maker creates a repository: %d %s", r.status, r.body)
		}
		made := r.json(t)["_href"].(string)
		if r := e.call("DELETE", made, nil, maker); r.status != http.StatusAccepted {
			t.Errorf("maker deletes what it made: %d %s", r.status, r.body)
		}
		if r := e.call("GET", teamRepo, nil, maker); r.status != http.StatusNotFound {
			t.Errorf("maker reads team-repo: %d, want 404", r.status)
		}
	})
}
