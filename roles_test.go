package mooring_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
)

// TestRolePolicy: what each kind of user may do to a public and a
// private distribution and to a name nothing serves, by role.
func TestRolePolicy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := mooring.Open(ctx, filepath.Join(dir, "db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, u := range []string{"consumer", "collab", "owner", "creator", "nobody"} {
		if _, err := m.Users.Create(ctx, u, u+"-password", false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Users.EnsureAdmin(ctx, "admin-password"); err != nil {
		t.Fatal(err)
	}
	dists := map[string]*distribution.Distribution{}
	for _, d := range []struct {
		name    string
		private bool
	}{{"pub/app", false}, {"team/app", true}} {
		repo, err := m.Repositories.CreateRepository(ctx, d.name, "")
		if err != nil {
			t.Fatal(err)
		}
		dist := &distribution.Distribution{Name: d.name, BasePath: d.name, RepositoryID: &repo.ID, Private: d.private}
		if err := m.Distributions.Create(ctx, dist); err != nil {
			t.Fatal(err)
		}
		dists[d.name] = dist
	}
	for _, r := range []mooring.Role{
		{Username: "consumer", Role: mooring.RoleConsumer, Kind: mooring.KindNamespace, Object: "team"},
		{Username: "collab", Role: mooring.RoleCollaborator, Kind: mooring.KindDistribution, Object: dists["team/app"].ID},
		{Username: "owner", Role: mooring.RoleOwner, Kind: mooring.KindNamespace, Object: "team"},
		{Username: "creator", Role: mooring.RoleCreator, Kind: mooring.KindNamespace, Object: "fresh"},
	} {
		if err := m.Users.AddRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	p := mooring.RolePolicy{Users: m.Users, Distributions: m.Distributions}
	all := []string{"pull", "push", "delete"}
	want := map[string]map[string][]string{ // user -> name -> allowed
		"":         {"pub/app": {"pull"}, "team/app": nil, "fresh/app": {"pull"}},
		"nobody":   {"pub/app": {"pull"}, "team/app": nil, "fresh/app": {"pull"}},
		"consumer": {"pub/app": {"pull"}, "team/app": {"pull"}, "fresh/app": {"pull"}},
		"collab":   {"pub/app": {"pull"}, "team/app": all, "fresh/app": {"pull"}},
		"owner":    {"pub/app": {"pull"}, "team/app": all, "team/new": {"pull", "push"}},
		"creator":  {"pub/app": {"pull"}, "team/app": nil, "fresh/app": {"pull", "push"}},
		"admin":    {"pub/app": all, "team/app": all, "fresh/app": all},
	}
	for user, names := range want {
		for name, w := range names {
			got, err := p.Allowed(ctx, user, registryapi.Scope{Type: "repository", Name: name, Actions: all})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, w) {
				t.Errorf("%q on %s: allowed %v, want %v", user, name, got, w)
			}
		}
	}
	// Roles are checked against their kind; removing one not held is
	// not found.
	for _, bad := range []mooring.Role{
		{Username: "nobody", Role: mooring.RoleViewer, Kind: mooring.KindNamespace, Object: "x"},
		{Username: "nobody", Role: mooring.RoleCreator, Kind: mooring.KindGlobal, Object: "x"},
		{Username: "nobody", Role: mooring.RoleOwner, Kind: "planet", Object: "x"},
	} {
		var fe *errdef.FieldError
		if err := m.Users.AddRole(ctx, bad); !errors.As(err, &fe) {
			t.Errorf("AddRole(%+v) = %v, want a field error", bad, err)
		}
	}
	if err := m.Users.RemoveRole(ctx, mooring.Role{Username: "nobody", Role: mooring.RoleOwner, Kind: mooring.KindNamespace, Object: "team"}); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("removing a role not held: %v", err)
	}
	// A disabled user cannot log in; the last administrator cannot go.
	if err := m.Users.SetDisabled(ctx, "collab", true); err != nil {
		t.Fatal(err)
	}
	if err := m.Users.Authenticate(ctx, "c", "collab", "collab-password"); !errors.Is(err, mooring.ErrBadCredentials) {
		t.Errorf("a disabled user logged in: %v", err)
	}
	if err := m.Users.Delete(ctx, mooring.AdminUser); !errors.Is(err, errdef.ErrConflict) {
		t.Errorf("deleting the last administrator: %v", err)
	}
	if err := m.Users.Delete(ctx, "owner"); err != nil {
		t.Fatal(err)
	}
	if roles, _ := m.Users.RolesOn(ctx, mooring.KindNamespace, "team"); len(roles) != 1 {
		t.Errorf("after deleting owner, roles on team: %v", fmt.Sprint(roles))
	}
}
