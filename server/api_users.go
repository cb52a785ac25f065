package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
)

// Users and their roles (/pulp/api/v3/users/): administrators only, but
// for a user reading itself and changing its own password.

type userJSON struct {
	Href     string `json:"_href"`
	Created  string `json:"_created"`
	Username string `json:"username"`
	IsAdmin  bool   `json:"is_admin"`
	Disabled bool   `json:"disabled"`
}

func userHref(name string) string { return "/pulp/api/v3/users/" + name + "/" }

func userView(u *mooring.User) userJSON {
	return userJSON{Href: userHref(u.Username), Created: ts(u.CreatedAt), Username: u.Username, IsAdmin: u.Admin, Disabled: u.Disabled}
}

type userKey struct{}

// userRoutes are the REST routes a user who is not an administrator may
// call (their handlers check what it may do there); every other route is
// for administrators. Roles give users what they do in the registry.
var userRoutes = map[string]bool{
	"docs": true, "users-detail": true, "users-update": true,
	"user-roles-list": true, "user-roles-add": true, "user-roles-remove": true,
	// Owners grant roles on what they own (mayGrant).
	"distributions-add-role": true, "distributions-remove-role": true,
	"repositories-add-role": true, "repositories-remove-role": true,
}

// requester is who the dispatcher authenticated, read once a request.
type requester struct {
	name  string
	admin bool
}

// requestUser is the user the dispatcher authenticated, "" for none.
func requestUser(ctx context.Context) string {
	rq, _ := ctx.Value(userKey{}).(requester)
	return rq.name
}

// requestAdmin reports whether that user is an enabled administrator.
func requestAdmin(ctx context.Context) bool {
	rq, _ := ctx.Value(userKey{}).(requester)
	return rq.admin
}

// errShown marks a request hideFromUser has answered.
var errShown = errors.New("answered")

// hideFromUser lets administrators through. To anybody else the REST API
// shows nothing, so that nobody learns what exists: lists are empty,
// objects not found, changes not permitted. (Roles act in the registry.)
func (s *Server) hideFromUser(w http.ResponseWriter, r *http.Request, route string) error {
	err := s.requireAdmin(r, "")
	if err == nil {
		return nil
	}
	if rule, ok := restRules[route]; ok {
		err = rule(s, r, requestUser(r.Context()))
		if !errors.Is(err, errEmptyList) {
			return err
		}
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case read && strings.HasSuffix(route, "-list"):
		writeJSON(w, http.StatusOK, map[string]any{"count": 0, "next": nil, "previous": nil, "results": []any{}})
		return errShown
	case read && strings.HasSuffix(route, "-detail"):
		return errdef.New(errdef.ErrNotFound, "not found")
	}
	return err
}

// requireAdmin refuses a request whose user is not an administrator;
// self, when not empty, is also let through when it is the user.
func (s *Server) requireAdmin(r *http.Request, self string) error {
	if self != "" && requestUser(r.Context()) == self || requestAdmin(r.Context()) {
		return nil
	}
	return errForbidden
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r, ""); err != nil {
		return err
	}
	q := newQuery(r)
	limit, offset := q.page()
	if err := q.done(); err != nil {
		return err
	}
	us, err := s.users.List(r.Context())
	if err != nil {
		return err
	}
	out := []userJSON{}
	for i := offset; i < len(us) && i < offset+limit; i++ {
		out = append(out, userView(&us[i]))
	}
	writeJSON(w, http.StatusOK, newPage(r, out, len(us), limit, offset))
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r, ""); err != nil {
		return err
	}
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	name, password := b.str("username", true, false), b.str("password", true, false)
	admin := b.boolean("is_admin")
	if err := b.done(); err != nil {
		return err
	}
	u, err := s.users.Create(r.Context(), *name, *password, admin != nil && *admin)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, userView(u))
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["username"]
	if err := s.requireAdmin(r, name); err != nil {
		return errdef.New(errdef.ErrNotFound, "not found")
	}
	u, err := s.users.Get(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

// updateUser changes a password (a user its own too) and, for
// administrators, disabled.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["username"]
	if err := s.requireAdmin(r, name); err != nil {
		return errdef.New(errdef.ErrNotFound, "not found")
	}
	if _, err := s.users.Get(r.Context(), name); err != nil {
		return err
	}
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	b.partial = true
	password, disabled := b.str("password", false, false), b.boolean("disabled")
	if err := b.done(); err != nil {
		return err
	}
	if disabled != nil {
		if err := s.requireAdmin(r, ""); err != nil {
			return err
		}
		if err := s.users.SetDisabled(r.Context(), name, *disabled); err != nil {
			return err
		}
	}
	if password != nil {
		if err := s.users.SetPassword(r.Context(), name, *password); err != nil {
			return onField(err, "password", errdef.ErrInvalid)
		}
	}
	u, err := s.users.Get(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r, ""); err != nil {
		return err
	}
	if err := s.users.Delete(r.Context(), mux.Vars(r)["username"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type roleJSON struct {
	Role   string `json:"role"`
	Kind   string `json:"kind"`
	Object string `json:"object"`
}

func (s *Server) listUserRoles(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["username"]
	if err := s.requireAdmin(r, name); err != nil {
		return errdef.New(errdef.ErrNotFound, "not found")
	}
	if _, err := s.users.Get(r.Context(), name); err != nil {
		return err
	}
	roles, err := s.users.Roles(r.Context(), name)
	if err != nil {
		return err
	}
	out := make([]roleJSON, len(roles))
	for i, ro := range roles {
		out[i] = roleJSON{Role: ro.Role, Kind: ro.Kind, Object: ro.Object}
	}
	writeJSON(w, http.StatusOK, newPage(r, out, len(out), len(out)+1, 0))
	return nil
}

// readRole reads {role, kind, object} for the user in the path.
func readRole(r *http.Request) (mooring.Role, error) {
	b, err := decodeBody(r)
	if err != nil {
		return mooring.Role{}, err
	}
	role, kind, object := b.str("role", true, false), b.str("kind", true, false), b.str("object", false, true)
	if err := b.done(); err != nil {
		return mooring.Role{}, err
	}
	ro := mooring.Role{Username: mux.Vars(r)["username"], Role: *role, Kind: *kind}
	if object != nil {
		ro.Object = *object
	}
	return ro, nil
}

// mayGrant lets an administrator grant anything, and an owner of a
// namespace, distribution or repository roles on it.
func (s *Server) mayGrant(r *http.Request, ro mooring.Role) error {
	if s.requireAdmin(r, "") == nil {
		return nil
	}
	if ro.Kind != mooring.KindGlobal {
		owners, err := s.users.RolesOn(r.Context(), ro.Kind, ro.Object)
		if err != nil {
			return err
		}
		for _, o := range owners {
			if o.Username == requestUser(r.Context()) && o.Role == mooring.RoleOwner {
				return nil
			}
		}
	}
	return errdef.New(errdef.ErrDenied, "You do not have permission to perform this action.")
}

func (s *Server) addUserRole(w http.ResponseWriter, r *http.Request) error {
	ro, err := readRole(r)
	if err != nil {
		return err
	}
	if err := s.mayGrant(r, ro); err != nil {
		return err
	}
	if err := s.users.AddRole(r.Context(), ro); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, roleJSON{Role: ro.Role, Kind: ro.Kind, Object: ro.Object})
	return nil
}

func (s *Server) removeUserRole(w http.ResponseWriter, r *http.Request) error {
	ro, err := readRole(r)
	if err != nil {
		return err
	}
	if err := s.mayGrant(r, ro); err != nil {
		return err
	}
	if err := s.users.RemoveRole(r.Context(), ro); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Object-level roles in Pulp's shape: POST <object>/add_role/ and
// remove_role/ with {"role": "...", "users": ["..."]}, GET list_roles/.

type objectRolesJSON struct {
	Role  string   `json:"role"`
	Users []string `json:"users"`
}

// objectKind returns the role kind and object id of a distribution or
// repository route.
func objectKind(r *http.Request) (kind, id string) {
	if strings.Contains(r.URL.Path, "/docker-distributions/") {
		return mooring.KindDistribution, mux.Vars(r)["id"]
	}
	return mooring.KindRepository, mux.Vars(r)["id"]
}

func (s *Server) changeObjectRole(w http.ResponseWriter, r *http.Request, add bool) error {
	kind, id := objectKind(r)
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	role, users := b.str("role", true, false), b.strList("users")
	if users == nil {
		b.required("users")
	}
	if err := b.done(); err != nil {
		return err
	}
	for _, u := range *users {
		ro := mooring.Role{Username: u, Role: *role, Kind: kind, Object: id}
		if err := s.mayGrant(r, ro); err != nil {
			return err
		}
		if add {
			err = s.users.AddRole(r.Context(), ro)
		} else {
			err = s.users.RemoveRole(r.Context(), ro)
		}
		if err != nil {
			return onField(err, "users", errdef.ErrNotFound)
		}
	}
	status := http.StatusCreated
	if !add {
		status = http.StatusOK
	}
	writeJSON(w, status, objectRolesJSON{Role: *role, Users: *users})
	return nil
}

func (s *Server) addObjectRole(w http.ResponseWriter, r *http.Request) error {
	return s.changeObjectRole(w, r, true)
}

func (s *Server) removeObjectRole(w http.ResponseWriter, r *http.Request) error {
	return s.changeObjectRole(w, r, false)
}

func (s *Server) listObjectRoles(w http.ResponseWriter, r *http.Request) error {
	kind, id := objectKind(r)
	roles, err := s.users.RolesOn(r.Context(), kind, id)
	if err != nil {
		return err
	}
	byRole := map[string][]string{}
	var order []string
	for _, ro := range roles {
		if byRole[ro.Role] == nil {
			order = append(order, ro.Role)
		}
		byRole[ro.Role] = append(byRole[ro.Role], ro.Username)
	}
	out := []objectRolesJSON{}
	for _, role := range order {
		out = append(out, objectRolesJSON{Role: role, Users: byRole[role]})
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": out})
	return nil
}
