package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
)

func as(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// TestUsersAPI: administrators manage users and roles; a user sees and
// changes only itself, and grants roles only on what it owns; a disabled
// user is locked out; the last administrator stays.
func TestUsersAPI(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		for _, u := range []string{"bob", "carol"} {
			if r := e.call("POST", "/pulp/api/v3/users/", map[string]any{"username": u, "password": u + "-password"}); r.status != http.StatusCreated {
				t.Fatalf("create %s: %d %s", u, r.status, r.body)
			}
		}
		if r := e.call("POST", "/pulp/api/v3/users/", map[string]any{"username": "bob", "password": "x"}); r.status != http.StatusBadRequest {
			t.Errorf("a taken username: %d %s", r.status, r.body)
		}
		if r := e.call("POST", "/pulp/api/v3/users/", map[string]any{"username": "dan", "password": string(make([]byte, 73))}); r.status != http.StatusBadRequest {
			t.Errorf("a 73-byte password: %d %s", r.status, r.body)
		}
		bob := as("bob", "bob-password")
		if r := e.call("GET", "/pulp/api/v3/users/", nil, bob); r.status != http.StatusOK || r.json(t)["count"].(float64) != 0 {
			t.Errorf("bob lists users: %d %s, want an empty list", r.status, r.body)
		}
		if r := e.call("GET", "/pulp/api/v3/users/carol/", nil, bob); r.status != http.StatusNotFound {
			t.Errorf("bob reads carol: %d, want 404", r.status)
		}
		if r := e.call("GET", "/pulp/api/v3/users/bob/", nil, bob); r.status != http.StatusOK {
			t.Errorf("bob reads himself: %d %s", r.status, r.body)
		}
		if r := e.call("PATCH", "/pulp/api/v3/users/bob/", map[string]any{"password": "bob-new-password"}, bob); r.status != http.StatusOK {
			t.Errorf("bob changes his password: %d %s", r.status, r.body)
		}
		bob = as("bob", "bob-new-password")
		if r := e.call("PATCH", "/pulp/api/v3/users/bob/", map[string]any{"disabled": false}, bob); r.status != http.StatusForbidden {
			t.Errorf("bob sets disabled on himself: %d, want 403", r.status)
		}
		// Roles: the admin makes bob owner of namespace team; bob grants
		// carol consumer there, but nothing global.
		owner := map[string]any{"role": "owner", "kind": "namespace", "object": "team"}
		if r := e.call("POST", "/pulp/api/v3/users/bob/roles/", owner); r.status != http.StatusCreated {
			t.Fatalf("admin grants bob owner: %d %s", r.status, r.body)
		}
		consumer := map[string]any{"role": "consumer", "kind": "namespace", "object": "team"}
		if r := e.call("POST", "/pulp/api/v3/users/carol/roles/", consumer, bob); r.status != http.StatusCreated {
			t.Errorf("bob, owner of team, grants carol consumer: %d %s", r.status, r.body)
		}
		if r := e.call("POST", "/pulp/api/v3/users/carol/roles/", map[string]any{"role": "creator", "kind": "global"}, bob); r.status != http.StatusForbidden {
			t.Errorf("bob grants a global role: %d, want 403", r.status)
		}
		if r := e.call("POST", "/pulp/api/v3/users/carol/roles/", map[string]any{"role": "viewer", "kind": "namespace", "object": "team"}); r.status != http.StatusBadRequest {
			t.Errorf("a role the kind does not take: %d %s", r.status, r.body)
		}
		r := e.call("GET", "/pulp/api/v3/users/carol/roles/", nil)
		if r.status != http.StatusOK || r.json(t)["count"].(float64) != 1 {
			t.Errorf("carol's roles: %d %s", r.status, r.body)
		}
		if r := e.call("POST", "/pulp/api/v3/users/carol/roles/remove/", consumer, bob); r.status != http.StatusNoContent {
			t.Errorf("bob takes carol's role back: %d %s", r.status, r.body)
		}
		if r := e.call("POST", "/pulp/api/v3/users/carol/roles/remove/", consumer); r.status != http.StatusNotFound {
			t.Errorf("removing a role not held: %d %s", r.status, r.body)
		}
		// Disabled: locked out. The last administrator stays.
		if r := e.call("PATCH", "/pulp/api/v3/users/bob/", map[string]any{"disabled": true}); r.status != http.StatusOK {
			t.Fatalf("disable bob: %d %s", r.status, r.body)
		}
		if r := e.call("GET", "/pulp/api/v3/users/bob/", nil, bob); r.status != http.StatusUnauthorized {
			t.Errorf("disabled bob: %d, want 401", r.status)
		}
		if r := e.call("DELETE", "/pulp/api/v3/users/admin/", nil); r.status != http.StatusConflict {
			t.Errorf("deleting the last administrator: %d %s", r.status, r.body)
		}
		if r := e.call("DELETE", "/pulp/api/v3/users/carol/", nil); r.status != http.StatusNoContent {
			t.Errorf("deleting carol: %d %s", r.status, r.body)
		}
		if r := e.call("GET", "/pulp/api/v3/users/carol/", nil); r.status != http.StatusNotFound {
			t.Errorf("carol after her deletion: %d", r.status)
		}
	})
}

// TestObjectRoles: add_role, remove_role and list_roles on a
// distribution, Pulp's shape; an owner grants on what it owns.
func TestObjectRoles(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		for _, u := range []string{"bob", "carol"} {
			e.call("POST", "/pulp/api/v3/users/", map[string]any{"username": u, "password": u + "-password"})
		}
		_, repo := e.createRepo("team/app")
		r := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "app", "base_path": "team/app", "repository": repo})
		dist := r.json(t)["_href"].(string)
		if r := e.call("POST", dist+"add_role/", map[string]any{"role": "owner", "users": []string{"bob"}}); r.status != http.StatusCreated {
			t.Fatalf("add_role: %d %s", r.status, r.body)
		}
		bob := as("bob", "bob-password")
		if r := e.call("POST", dist+"add_role/", map[string]any{"role": "consumer", "users": []string{"carol"}}, bob); r.status != http.StatusCreated {
			t.Errorf("bob, owner, grants carol consumer: %d %s", r.status, r.body)
		}
		if r := e.call("POST", dist+"add_role/", map[string]any{"role": "owner", "users": []string{"bob"}}, as("carol", "carol-password")); r.status != http.StatusForbidden {
			t.Errorf("carol, consumer, grants a role: %d, want 403", r.status)
		}
		r = e.call("GET", dist+"list_roles/", nil)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `{"role":"consumer","users":["carol"]}`) {
			t.Errorf("list_roles: %d %s", r.status, r.body)
		}
		if r := e.call("POST", dist+"remove_role/", map[string]any{"role": "consumer", "users": []string{"carol"}}, bob); r.status != http.StatusOK {
			t.Errorf("remove_role: %d %s", r.status, r.body)
		}
		if r := e.call("POST", dist+"add_role/", map[string]any{"role": "owner", "users": []string{"nobody"}}); r.status != http.StatusBadRequest {
			t.Errorf("a role for an unknown user: %d %s", r.status, r.body)
		}
	})
}
