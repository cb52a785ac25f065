package mooring

import (
	"context"
	"slices"

	"github.com/mooring-dev/mooring/distribution"
)

// What a permission check asks for.
const (
	// PermRead: see the object.
	PermRead = "read"
	// PermWrite: change its content (push, delete content, repository
	// actions, sync into it).
	PermWrite = "write"
	// PermOwn: change the object itself, delete it, grant roles on it.
	PermOwn = "own"
)

// roles that give each permission on a distribution (or its namespace)
// and on a repository.
var (
	distRoles = map[string][]string{
		PermRead:  {RoleOwner, RoleCollaborator, RoleConsumer},
		PermWrite: {RoleOwner, RoleCollaborator},
		PermOwn:   {RoleOwner},
	}
	repoRoles = map[string][]string{
		PermRead:  {RoleOwner, RoleContentManager, RoleViewer},
		PermWrite: {RoleOwner, RoleContentManager},
		PermOwn:   {RoleOwner},
	}
)

// Permissions answer what a user may do through the REST API, from its
// roles: administrators everything; others what their roles on
// repositories, distributions and namespaces give (a role on a
// distribution or its namespace also applies to the repository it serves).
type Permissions struct {
	Users         *Users
	Distributions *distribution.Store
}

// Permissions returns the permissions of this Mooring's users.
func (m *Mooring) Permissions() *Permissions {
	return &Permissions{Users: m.Users, Distributions: m.Distributions}
}

// grants are one user's roles, read once per check.
type grants struct {
	admin bool
	roles []Role
}

func (p *Permissions) grants(ctx context.Context, user string) (*grants, error) {
	g := &grants{}
	if user == "" {
		return g, nil
	}
	var err error
	if g.admin, err = p.Users.IsAdmin(ctx, user); err != nil || g.admin {
		return g, err
	}
	g.roles, err = p.Users.Roles(ctx, user)
	return g, err
}

func (g *grants) has(kind, object string, roles []string) bool {
	return slices.ContainsFunc(g.roles, func(r Role) bool {
		return r.Kind == kind && r.Object == object && slices.Contains(roles, r.Role)
	})
}

func (g *grants) onDistribution(d *distribution.Distribution, need string) bool {
	return g.admin || g.has(KindDistribution, d.ID, distRoles[need]) || g.has(KindNamespace, Namespace(d.BasePath), distRoles[need])
}

// Distribution reports whether user may do need to distribution d.
func (p *Permissions) Distribution(ctx context.Context, user string, d *distribution.Distribution, need string) (bool, error) {
	g, err := p.grants(ctx, user)
	if err != nil {
		return false, err
	}
	return g.onDistribution(d, need), nil
}

// Repository reports whether user may do need to repository repoID.
func (p *Permissions) Repository(ctx context.Context, user, repoID, need string) (bool, error) {
	g, err := p.grants(ctx, user)
	if err != nil || g.admin {
		return g.admin, err
	}
	if g.has(KindRepository, repoID, repoRoles[need]) {
		return true, nil
	}
	dists, err := p.Distributions.Serving(ctx, repoID)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(dists, func(d distribution.Distribution) bool { return g.onDistribution(&d, need) }), nil
}

// CreateDistribution reports whether user may create a distribution at
// basePath: creator or owner of its namespace, or global creator.
func (p *Permissions) CreateDistribution(ctx context.Context, user, basePath string) (bool, error) {
	g, err := p.grants(ctx, user)
	if err != nil {
		return false, err
	}
	return g.admin || g.has(KindNamespace, Namespace(basePath), []string{RoleOwner, RoleCreator}) || g.has(KindGlobal, "", []string{RoleCreator}), nil
}

// Creator reports whether user may create repositories and remotes and
// see remotes: a global creator or an administrator.
func (p *Permissions) Creator(ctx context.Context, user string) (bool, error) {
	g, err := p.grants(ctx, user)
	if err != nil {
		return false, err
	}
	return g.admin || g.has(KindGlobal, "", []string{RoleCreator}), nil
}

// Visible returns the ids of the repositories and distributions user may
// see; nil, nil for an administrator, who sees everything.
func (p *Permissions) Visible(ctx context.Context, user string) (repos, dists []string, err error) {
	g, err := p.grants(ctx, user)
	if err != nil || g.admin {
		return nil, nil, err
	}
	repos, dists = []string{}, []string{}
	add := func(ids *[]string, id string) {
		if !slices.Contains(*ids, id) {
			*ids = append(*ids, id)
		}
	}
	addDist := func(d distribution.Distribution) error {
		add(&dists, d.ID)
		if d.RepositoryID != nil {
			add(&repos, *d.RepositoryID)
		}
		return nil
	}
	for _, r := range g.roles {
		switch {
		case r.Kind == KindRepository:
			add(&repos, r.Object)
		case r.Kind == KindDistribution && slices.Contains(distRoles[PermRead], r.Role):
			d, err := p.Distributions.Get(ctx, r.Object)
			if err == nil {
				addDist(*d)
			}
		case r.Kind == KindNamespace && slices.Contains(distRoles[PermRead], r.Role):
			ds, err := p.Distributions.InNamespace(ctx, r.Object)
			if err != nil {
				return nil, nil, err
			}
			for _, d := range ds {
				addDist(d)
			}
		}
	}
	return repos, dists, nil
}
