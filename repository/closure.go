package repository

import (
	"context"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
)

// The recursion of repository actions: what units reference, found in
// batches of ids and digests, never unit by unit.

// node is a unit as the recursion sees it.
type node struct {
	ID       int64         `bun:"id"`
	Type     content.Type  `bun:"type"`
	Digest   digest.Digest `bun:"digest"`
	TaggedID int64         `bun:"tagged_id"`
}

var (
	documentTypes = []content.Type{content.TypeManifest, content.TypeManifestList}
	blobTypes     = []content.Type{content.TypeBlob}
)

// childTypes returns the types a ref of the given role names.
func childTypes(role string) []content.Type {
	if role == RoleManifest {
		return documentTypes
	}
	return blobTypes
}

// closeChange turns resolved names into the change of the next version:
// the units added with everything they reference, the units removed with
// what only they referenced (relative to the version the change starts
// from), an added unit staying even when a removal would take it.
func (s *Store) closeChange(ctx context.Context, repo *Repository, r *resolved) (Change, error) {
	ch := Change{Base: r.base}
	from := VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}
	if r.base != nil {
		from.Number = *r.base
	}
	added, err := s.addClosure(ctx, r.add, r.within)
	if err != nil {
		return ch, err
	}
	ch.Add = slices.Collect(maps.Keys(added))
	slices.Sort(ch.Add)
	var removed map[int64]bool
	switch {
	case r.removeAll:
		removed, err = s.memberIDs(ctx, repo.ID, from.Number)
	case r.recursive:
		removed, err = s.removeClosure(ctx, from, r.remove, r.removeField)
	default:
		removed = map[int64]bool{}
		for _, id := range r.remove {
			removed[id] = true
		}
	}
	if err != nil {
		return ch, err
	}
	for id := range removed {
		if _, ok := added[id]; !ok {
			ch.Remove = append(ch.Remove, id)
		}
	}
	slices.Sort(ch.Remove)
	return ch, nil
}

// addClosure returns ids with every unit they reference, directly or not:
// the manifest or list a tag names, the manifests of a list, the config
// and layers of a manifest. Referenced units not stored (for the manifests
// of a list, not in version *within, when it is set) are left out.
func (s *Store) addClosure(ctx context.Context, ids []int64, within *VersionRef) (map[int64]node, error) {
	out := make(map[int64]node, len(ids))
	frontier, err := s.nodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	for len(frontier) > 0 {
		for _, n := range frontier {
			out[n.ID] = n
		}
		var tagged []int64
		var lists, manifests []node
		for _, n := range frontier {
			switch {
			case n.Type.IsTag():
				if _, seen := out[n.TaggedID]; !seen && n.TaggedID != 0 {
					tagged = append(tagged, n.TaggedID)
				}
			case n.Type == content.TypeManifestList:
				lists = append(lists, n)
			case n.Type == content.TypeManifest:
				manifests = append(manifests, n)
			}
		}
		next, err := s.nodes(ctx, tagged)
		if err != nil {
			return nil, err
		}
		// A list's manifests are those of version within (a list synced
		// with a platform filter lacks some); a manifest's blobs are all
		// of them, wherever they are, so that a manifest is never added
		// without its blobs, even while within is being deleted or folded.
		children, err := s.children(ctx, within, lists)
		if err != nil {
			return nil, err
		}
		blobs, err := s.children(ctx, nil, manifests)
		if err != nil {
			return nil, err
		}
		frontier = frontier[:0]
		for _, n := range slices.Concat(next, children, blobs) {
			if _, seen := out[n.ID]; !seen {
				out[n.ID] = n
				frontier = append(frontier, n)
			}
		}
	}
	return out, nil
}

// removeClosure returns what removing ids from version v takes away: the
// units of ids that v holds, the tags in v naming those that are manifests
// or lists, and every unit they reference, directly or not, that no unit
// staying in v references. A unit of ids (not a tag) that a staying unit
// references is a *errdef.FieldError about field.
func (s *Store) removeClosure(ctx context.Context, v VersionRef, ids []int64, field string) (map[int64]bool, error) {
	named, err := s.nodesIn(ctx, v, ids)
	if err != nil {
		return nil, err
	}
	removed := make(map[int64]bool, len(named))
	for _, n := range named {
		removed[n.ID] = true
	}
	tags, err := s.tagsNaming(ctx, v, named)
	if err != nil {
		return nil, err
	}
	gone := slices.Concat(named, tags)
	for _, t := range tags {
		removed[t.ID] = true
	}
	pending := map[int64]node{}
	for len(gone) > 0 {
		children, err := s.childrenIn(ctx, v, gone)
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			if !removed[c.ID] {
				pending[c.ID] = c
			}
		}
		refs, err := s.referrers(ctx, v, slices.Collect(maps.Values(pending)))
		if err != nil {
			return nil, err
		}
		gone = gone[:0]
		for id, c := range pending {
			if allIn(refs[id], removed) {
				removed[id] = true
				gone = append(gone, c)
				delete(pending, id)
			}
		}
	}
	return removed, s.refuseNeeded(ctx, v, named, removed, field)
}

// refuseNeeded is a *errdef.FieldError when a unit named for removal is
// referenced by a unit that stays (tags naming it go with it).
func (s *Store) refuseNeeded(ctx context.Context, v VersionRef, named []node, removed map[int64]bool, field string) error {
	var check []node
	for _, n := range named {
		if !n.Type.IsTag() {
			check = append(check, n)
		}
	}
	refs, err := s.referrers(ctx, v, check)
	if err != nil {
		return err
	}
	for _, n := range check {
		for _, p := range refs[n.ID] {
			if removed[p] {
				continue
			}
			parent, err := s.ContentByID(ctx, p)
			if err != nil {
				return err
			}
			return errdef.Field(field, "%s %s is referenced by %s %s, which stays in the repository; remove that too",
				n.Type, n.Digest, parent.Type, parent.Digest)
		}
	}
	return nil
}

func allIn(ids []int64, set map[int64]bool) bool {
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return true
}

// nodes loads the units of ids; an id not stored is errdef.ErrNotFound.
func (s *Store) nodes(ctx context.Context, ids []int64) ([]node, error) {
	var out []node
	for chunk := range slices.Chunk(ids, batch) {
		var got []node
		if err := nodeQuery(s.db, "c").Where("c.id IN (?)", bun.In(chunk)).Scan(ctx, &got); err != nil {
			return nil, err
		}
		if len(got) < len(distinctIDs(chunk)) {
			return nil, errdef.New(errdef.ErrNotFound, "a content unit named was deleted meanwhile")
		}
		out = append(out, got...)
	}
	return out, nil
}

// nodesIn loads the units of ids that version v holds.
func (s *Store) nodesIn(ctx context.Context, v VersionRef, ids []int64) ([]node, error) {
	var out []node
	for chunk := range slices.Chunk(ids, batch) {
		var got []node
		if err := inVersion(nodeQuery(s.db, "c"), v).Where("c.id IN (?)", bun.In(chunk)).Scan(ctx, &got); err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func distinctIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// nodeQuery selects nodes from contents AS alias.
func nodeQuery(db bun.IDB, alias string) *bun.SelectQuery {
	return db.NewSelect().TableExpr("contents AS " + alias).
		ColumnExpr(alias + ".id, " + alias + ".type, " + alias + ".digest, coalesce(" + alias + ".tagged_id, 0) AS tagged_id")
}

// inVersion restricts a query on contents AS c to the units of version v.
func inVersion(q *bun.SelectQuery, v VersionRef) *bun.SelectQuery {
	return q.Join("JOIN repository_contents AS rc ON rc.content_id = c.id").
		Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number)
}

// tagsNaming returns the tags in version v that name one of units.
func (s *Store) tagsNaming(ctx context.Context, v VersionRef, units []node) ([]node, error) {
	var docs []int64
	for _, n := range units {
		if n.Type == content.TypeManifest || n.Type == content.TypeManifestList {
			docs = append(docs, n.ID)
		}
	}
	var out []node
	for chunk := range slices.Chunk(docs, batch) {
		var got []node
		if err := inVersion(nodeQuery(s.db, "c"), v).Where("c.tagged_id IN (?)", bun.In(chunk)).Scan(ctx, &got); err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// childrenIn returns the units version v holds that units reference
// directly: what tags name, the manifests of lists, the blobs of manifests.
func (s *Store) childrenIn(ctx context.Context, v VersionRef, units []node) ([]node, error) {
	var tagged []int64
	var docs []node
	for _, n := range units {
		switch {
		case n.Type.IsTag():
			tagged = append(tagged, n.TaggedID)
		case n.Type == content.TypeManifest || n.Type == content.TypeManifestList:
			docs = append(docs, n)
		}
	}
	out, err := s.nodesIn(ctx, v, tagged)
	if err != nil {
		return nil, err
	}
	children, err := s.children(ctx, &v, docs)
	return append(out, children...), err
}

// children returns the stored units that documents reference through
// their refs (the manifests of lists, the config and layers of
// manifests), only those of version *v when v is not nil.
func (s *Store) children(ctx context.Context, v *VersionRef, docs []node) ([]node, error) {
	byRole := map[string][]digest.Digest{}
	for chunk := range slices.Chunk(docs, batch) {
		ids := make([]int64, len(chunk))
		for i, d := range chunk {
			ids[i] = d.ID
		}
		var refs []Ref
		if err := s.db.NewSelect().Model(&refs).Column("role", "child_digest").
			Where("parent_id IN (?)", bun.In(ids)).Scan(ctx); err != nil {
			return nil, err
		}
		for _, r := range refs {
			class := RoleLayer
			if r.Role == RoleManifest {
				class = RoleManifest
			}
			byRole[class] = append(byRole[class], r.ChildDigest)
		}
	}
	var out []node
	for role, ds := range byRole {
		for chunk := range slices.Chunk(distinct(ds), batch) {
			q := nodeQuery(s.db, "c").Where("c.type IN (?) AND c.digest IN (?) AND c.name = ''", bun.In(childTypes(role)), bun.In(chunk))
			if v != nil {
				q = inVersion(q, *v)
			}
			var got []node
			if err := q.Scan(ctx, &got); err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// referrers returns, for each of units, the ids of the units of version v
// that reference it directly: tags naming it, lists naming a manifest,
// manifests using a blob.
func (s *Store) referrers(ctx context.Context, v VersionRef, units []node) (map[int64][]int64, error) {
	out := map[int64][]int64{}
	if len(units) == 0 {
		return out, nil
	}
	tags, err := s.tagsNaming(ctx, v, units)
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		out[t.TaggedID] = append(out[t.TaggedID], t.ID)
	}
	type key struct {
		class string
		d     digest.Digest
	}
	byKey := map[key][]int64{}
	var ds []digest.Digest
	for _, n := range units {
		class := RoleLayer
		if n.Type != content.TypeBlob {
			class = RoleManifest
		}
		k := key{class, n.Digest}
		if len(byKey[k]) == 0 {
			ds = append(ds, n.Digest)
		}
		byKey[k] = append(byKey[k], n.ID)
	}
	for chunk := range slices.Chunk(distinct(ds), batch) {
		var rows []struct {
			Parent int64         `bun:"parent_id"`
			Role   string        `bun:"role"`
			Child  digest.Digest `bun:"child_digest"`
		}
		err := s.db.NewSelect().TableExpr("content_refs AS r").
			ColumnExpr("DISTINCT r.parent_id, r.role, r.child_digest").
			Join("JOIN repository_contents AS rc ON rc.content_id = r.parent_id").
			Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
			Where("r.child_digest IN (?)", bun.In(chunk)).Scan(ctx, &rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			class := RoleLayer
			if r.Role == RoleManifest {
				class = RoleManifest
			}
			for _, id := range byKey[key{class, r.Child}] {
				out[id] = append(out[id], r.Parent)
			}
		}
	}
	return out, nil
}
