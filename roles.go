package mooring

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/repository"
)

// Kinds of object a role is held on.
const (
	// KindGlobal: the whole Mooring; Object is "".
	KindGlobal = "global"
	// KindNamespace: every distribution whose base path starts with
	// Object + "/" (the first path segment), or is Object.
	KindNamespace = "namespace"
	// KindDistribution: one distribution, Object its id.
	KindDistribution = "distribution"
	// KindRepository: one repository, Object its id.
	KindRepository = "repository"
)

// Roles, Pulp's idea kept small.
const (
	// RoleOwner: everything on the object, including granting roles.
	RoleOwner = "owner"
	// RoleCollaborator: pull, push, delete content, repository actions,
	// sync.
	RoleCollaborator = "collaborator"
	// RoleConsumer: pull.
	RoleConsumer = "consumer"
	// RoleCreator: make namespaces, repositories, remotes (global), or new
	// names under a namespace by pushing.
	RoleCreator = "creator"
	// RoleContentManager: change a repository's content.
	RoleContentManager = "content_manager"
	// RoleViewer: see a repository.
	RoleViewer = "viewer"
)

// rolesOf are the roles each kind takes.
var rolesOf = map[string][]string{
	KindGlobal:       {RoleCreator},
	KindNamespace:    {RoleOwner, RoleCollaborator, RoleConsumer, RoleCreator},
	KindDistribution: {RoleOwner, RoleCollaborator, RoleConsumer},
	KindRepository:   {RoleOwner, RoleContentManager, RoleViewer},
}

// Role is one role a user holds on an object.
type Role struct {
	bun.BaseModel `bun:"table:user_roles"`

	Username  string    `bun:"username,pk" json:"username"`
	Role      string    `bun:"role,pk" json:"role"`
	Kind      string    `bun:"kind,pk" json:"kind"`
	Object    string    `bun:"object,pk" json:"object"`
	CreatedAt time.Time `bun:"created_at" json:"created_at"`
}

// checkRole refuses a role its kind does not take.
func checkRole(r Role) error {
	roles, ok := rolesOf[r.Kind]
	switch {
	case !ok:
		return errdef.Field("kind", "%q is not one of global, namespace, distribution, repository", r.Kind)
	case !slices.Contains(roles, r.Role):
		return errdef.Field("role", "%q is not a role on a %s; those are %s", r.Role, r.Kind, strings.Join(roles, ", "))
	case r.Kind == KindGlobal && r.Object != "":
		return errdef.Field("object", "a global role is held on no object")
	case r.Kind != KindGlobal && r.Object == "":
		return errdef.Field("object", "a %s role needs the object it is held on", r.Kind)
	}
	return nil
}

// AddRole gives r.Username the role r.Role on object r.Object of kind
// r.Kind. Adding a role held already changes nothing. An unknown user is
// errdef.ErrNotFound; a role the kind does not take an *errdef.FieldError.
func (u *Users) AddRole(ctx context.Context, r Role) error {
	if err := checkRole(r); err != nil {
		return err
	}
	if _, err := u.Get(ctx, r.Username); err != nil {
		return err
	}
	r.CreatedAt = time.Now().UTC()
	_, err := u.db.NewInsert().Model(&r).On("CONFLICT DO NOTHING").Exec(ctx)
	if mooringdb.IsForeignKeyViolation(err) {
		return errdef.New(errdef.ErrNotFound, "user %q not found", r.Username)
	}
	return err
}

// RemoveRole takes a role away; one not held is errdef.ErrNotFound.
func (u *Users) RemoveRole(ctx context.Context, r Role) error {
	res, err := u.db.NewDelete().Model((*Role)(nil)).
		Where("username = ? AND role = ? AND kind = ? AND object = ?", r.Username, r.Role, r.Kind, r.Object).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdef.New(errdef.ErrNotFound, "%s holds no %s role on %s %q", r.Username, r.Role, r.Kind, r.Object)
	}
	return nil
}

// Roles returns the roles username holds, ordered by kind, object and
// role.
func (u *Users) Roles(ctx context.Context, username string) ([]Role, error) {
	roles := []Role{}
	err := u.db.NewSelect().Model(&roles).Where("username = ?", username).Order("kind", "object", "role").Scan(ctx)
	return roles, err
}

// RolesOn returns the roles held on one object, ordered by user and role.
func (u *Users) RolesOn(ctx context.Context, kind, object string) ([]Role, error) {
	roles := []Role{}
	err := u.db.NewSelect().Model(&roles).Where("kind = ? AND object = ?", kind, object).Order("username", "role").Scan(ctx)
	return roles, err
}

// User is a user's public record: never its password.
type User struct {
	Username  string    `json:"username"`
	Admin     bool      `json:"is_admin"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (r *user) public() User {
	return User{Username: r.Username, Admin: r.Admin, Disabled: r.Disabled, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// Get returns user username, or errdef.ErrNotFound.
func (u *Users) Get(ctx context.Context, username string) (*User, error) {
	rec := new(user)
	err := u.db.NewSelect().Model(rec).Where("username = ?", username).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errdef.New(errdef.ErrNotFound, "user %q not found", username)
	}
	if err != nil {
		return nil, err
	}
	p := rec.public()
	return &p, nil
}

// List returns every user, by name.
func (u *Users) List(ctx context.Context) ([]User, error) {
	var recs []user
	if err := u.db.NewSelect().Model(&recs).Order("username").Scan(ctx); err != nil {
		return nil, err
	}
	out := make([]User, len(recs))
	for i := range recs {
		out[i] = recs[i].public()
	}
	return out, nil
}

// Create makes a user; a name taken is an *errdef.FieldError of kind
// errdef.ErrConflict.
func (u *Users) Create(ctx context.Context, username, password string, admin bool) (*User, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, errdef.Field("password", "%s", errdef.Message(err))
	}
	hash, err := hashPassword(password)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := &user{Username: username, PasswordHash: hash, Admin: admin, CreatedAt: now, UpdatedAt: now}
	if _, err := u.db.NewInsert().Model(rec).Exec(ctx); err != nil {
		if mooringdb.IsUniqueViolation(err) {
			return nil, errdef.FieldConflict("username", "a user with this username already exists.")
		}
		return nil, err
	}
	p := rec.public()
	return &p, nil
}

// SetDisabled disables or enables a user; a disabled user cannot log in.
func (u *Users) SetDisabled(ctx context.Context, username string, disabled bool) error {
	res, err := u.db.NewUpdate().Model((*user)(nil)).Set("disabled = ?, updated_at = ?", disabled, time.Now().UTC()).
		Where("username = ?", username).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdef.New(errdef.ErrNotFound, "user %q not found", username)
	}
	u.forget()
	return nil
}

// Delete deletes a user and its roles. The last enabled administrator
// cannot be deleted (errdef.ErrConflict).
func (u *Users) Delete(ctx context.Context, username string) error {
	target, err := u.Get(ctx, username)
	if err != nil {
		return err
	}
	if target.Admin {
		n, err := u.db.NewSelect().Model((*user)(nil)).Where("is_admin AND NOT disabled AND username <> ?", username).Count(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return errdef.New(errdef.ErrConflict, "%s is the last administrator", username)
		}
	}
	_, err = u.db.NewDelete().Model((*user)(nil)).Where("username = ?", username).Exec(ctx)
	u.forget()
	return err
}

// forget drops the cache of verified credentials, after a change that
// may withdraw some.
func (u *Users) forget() {
	u.mu.Lock()
	clear(u.ok)
	u.mu.Unlock()
}

// IsAdmin reports whether username is an enabled administrator.
func (u *Users) IsAdmin(ctx context.Context, username string) (bool, error) {
	if username == "" {
		return false, nil
	}
	return u.db.NewSelect().Model((*user)(nil)).Where("username = ? AND is_admin AND NOT disabled", username).Exists(ctx)
}

// Namespace is the namespace of a base path: its first segment.
func Namespace(basePath string) string {
	ns, _, _ := strings.Cut(basePath, "/")
	return ns
}

// RolePolicy is the registry policy of roles (registryapi.Policy):
//   - administrators may do everything;
//   - pull: anybody, anonymous included, from a public distribution or a
//     base path nothing serves yet (a pull-through's first pull); from a
//     private one, consumer, collaborator or owner on the distribution or
//     its namespace;
//   - push and delete: collaborator or owner on the distribution or its
//     namespace; a new name (nothing serves it): creator or owner on its
//     namespace, or global creator;
//   - the catalog: anybody (the registry lists only what each may pull).
type RolePolicy struct {
	Users         *Users
	Distributions *distribution.Store
}

// Allowed implements registryapi.Policy.
func (p RolePolicy) Allowed(ctx context.Context, user string, s registryapi.Scope) ([]string, error) {
	if s.Type == "registry" && s.Name == "catalog" {
		return []string{"*"}, nil
	}
	if s.Type != "repository" {
		return nil, nil
	}
	if admin, err := p.Users.IsAdmin(ctx, user); err != nil || admin {
		return s.Actions, err
	}
	dist, err := p.Distributions.ByBasePath(ctx, s.Name)
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return nil, err
	}
	var roles []Role
	if user != "" {
		if roles, err = p.Users.Roles(ctx, user); err != nil {
			return nil, err
		}
	}
	has := func(kind, object string, any ...string) bool {
		return slices.ContainsFunc(roles, func(r Role) bool {
			return r.Kind == kind && r.Object == object && slices.Contains(any, r.Role)
		})
	}
	ns := Namespace(s.Name)
	var allowed []string
	for _, a := range s.Actions {
		var ok bool
		switch {
		case a == registryapi.ActionPull && (dist == nil || !dist.Private):
			ok = true
		case a == registryapi.ActionPull:
			ok = has(KindDistribution, dist.ID, RoleOwner, RoleCollaborator, RoleConsumer) ||
				has(KindNamespace, ns, RoleOwner, RoleCollaborator, RoleConsumer)
		case (a == registryapi.ActionPush || a == registryapi.ActionDelete || a == "*") && dist != nil:
			ok = has(KindDistribution, dist.ID, RoleOwner, RoleCollaborator) || has(KindNamespace, ns, RoleOwner, RoleCollaborator)
		case a == registryapi.ActionPush:
			ok = has(KindNamespace, ns, RoleOwner, RoleCreator) || has(KindGlobal, "", RoleCreator)
		}
		if ok {
			allowed = append(allowed, a)
		}
	}
	return allowed, nil
}

// ownFirstPush gives the pusher of a new name the owner role on the
// repository and the distribution the push created.
func (m *Mooring) ownFirstPush(ctx context.Context, pusher string, repo *repository.Repository, dist *distribution.Distribution) error {
	if pusher == "" {
		return nil
	}
	if err := m.Users.AddRole(ctx, Role{Username: pusher, Role: RoleOwner, Kind: KindRepository, Object: repo.ID}); err != nil {
		return err
	}
	return m.Users.AddRole(ctx, Role{Username: pusher, Role: RoleOwner, Kind: KindDistribution, Object: dist.ID})
}

// Policy returns the registry policy of this Mooring's roles.
func (m *Mooring) Policy() registryapi.Policy {
	return RolePolicy{Users: m.Users, Distributions: m.Distributions}
}
