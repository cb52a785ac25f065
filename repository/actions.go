package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
)

// Repository actions: Pulp's tag, untag, add, remove, copy_tags and
// copy_manifests (pulp_container) and modify (pulpcore), each making at
// most one new version under the repository's lock.
//
// Adding and removing are recursive. Adding a tag brings the manifest or
// list it names, a list brings its manifests, a manifest its config and
// layers. Removing takes away, with the units named, what they referenced
// unless a unit that stays still references it; removing a manifest or
// list also removes the tags naming it. A unit named for removal that a
// staying unit other than a tag references (a manifest a staying list
// names, a blob a staying manifest uses) is refused: every version keeps
// what its manifests need to be pulled.

// Action kinds, the names of Pulp's repository actions.
const (
	ActionTag           = "tag"
	ActionUntag         = "untag"
	ActionAdd           = "add"
	ActionRemove        = "remove"
	ActionCopyTags      = "copy_tags"
	ActionCopyManifests = "copy_manifests"
	ActionModify        = "modify"
)

// AllUnits, as the ID of the only UnitRef of a removal, removes every
// unit (Pulp's ["*"]).
const AllUnits = "*"

// UnitRef names a content unit by its public id (Content.UUID) and the
// type the caller expects it to have; an empty Type accepts any.
type UnitRef struct {
	Type content.Type `json:"type,omitempty"`
	ID   string       `json:"id"`
}

// Source names the version a copy reads: version *Version of repository
// RepositoryID, or its latest version when Version is nil.
type Source struct {
	RepositoryID string `json:"repository_id"`
	Version      *int   `json:"version,omitempty"`
}

// Action is one repository action as Pulp's REST API takes it; Kind says
// which of the other fields count:
//   - ActionTag: Tag names the manifest or manifest list with Digest in
//     the latest version; a tag of that name naming something else is
//     replaced.
//   - ActionUntag: the tag named Tag is removed (only the tag).
//   - ActionAdd, ActionRemove: Units are added or removed, recursively;
//     a removal whose only unit has ID AllUnits removes everything.
//   - ActionCopyTags: the tags of Source named by Names (every tag when
//     Names is nil) are added, recursively, replacing tags of the same
//     names.
//   - ActionCopyManifests: the manifests and lists of Source with the
//     given Digests (all when nil) and MediaTypes (any when nil) are added,
//     recursively.
//   - ActionModify: Remove then Add, recursively, starting from version
//     Base when it is set; an added unit stays even when a removal would
//     take it.
type Action struct {
	Kind       string          `json:"kind"`
	Tag        string          `json:"tag,omitempty"`
	Digest     digest.Digest   `json:"digest,omitempty"`
	Units      []UnitRef       `json:"units,omitempty"`
	Add        []UnitRef       `json:"add,omitempty"`
	Remove     []UnitRef       `json:"remove,omitempty"`
	Base       *int            `json:"base_version,omitempty"`
	Source     *Source         `json:"source,omitempty"`
	Names      []string        `json:"names,omitempty"`
	Digests    []digest.Digest `json:"digests,omitempty"`
	MediaTypes []string        `json:"media_types,omitempty"`
}

// TagManifest points tag name at the manifest or manifest list with
// digest d in the latest version of repository repoID (ActionTag).
func (s *Store) TagManifest(ctx context.Context, repoID, name string, d digest.Digest) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionTag, Tag: name, Digest: d})
}

// Untag removes tag name from repository repoID (ActionUntag).
func (s *Store) Untag(ctx context.Context, repoID, name string) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionUntag, Tag: name})
}

// AddContent adds units to repository repoID with what they reference
// (ActionAdd).
func (s *Store) AddContent(ctx context.Context, repoID string, units []UnitRef) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionAdd, Units: units})
}

// RemoveContent removes units from repository repoID with what only they
// referenced (ActionRemove); []UnitRef{{ID: AllUnits}} removes everything.
func (s *Store) RemoveContent(ctx context.Context, repoID string, units []UnitRef) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionRemove, Units: units})
}

// CopyTags adds the tags of from named by names (all when nil) to
// repository repoID, with what they reference (ActionCopyTags).
func (s *Store) CopyTags(ctx context.Context, repoID string, from Source, names []string) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionCopyTags, Source: &from, Names: names})
}

// CopyManifests adds the manifests and lists of from with the given
// digests and media types (nil: any) to repository repoID, with what they
// reference (ActionCopyManifests).
func (s *Store) CopyManifests(ctx context.Context, repoID string, from Source, digests []digest.Digest, mediaTypes []string) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionCopyManifests, Source: &from, Digests: digests, MediaTypes: mediaTypes})
}

// Modify removes then adds units, recursively, starting from version base
// (the latest when nil), in one new version (ActionModify).
func (s *Store) Modify(ctx context.Context, repoID string, add, remove []UnitRef, base *int) (*Version, error) {
	return s.ApplyAction(ctx, repoID, Action{Kind: ActionModify, Add: add, Remove: remove, Base: base})
}

// CheckAction validates a, as ApplyAction would, without changing
// anything: the repository, the units, tags, digests and versions it
// names must exist and be of the right type. Errors are *errdef.FieldError
// naming the REST API's field ("content_units", "tag", "digest", "names",
// "source_repository", …) and saying why, or errdef.ErrNotFound for an
// unknown repository. What only the repository's state at apply time can
// tell (a removal a staying unit forbids) is ApplyAction's to refuse.
func (s *Store) CheckAction(ctx context.Context, repoID string, a Action) error {
	repo, err := s.Repository(ctx, repoID)
	if err != nil {
		return err
	}
	_, err = s.resolveAction(ctx, repo, a, false)
	return err
}

// ApplyAction makes a into the next version of repository repoID, in one
// transaction holding the repository's lock, and returns it; when the
// content would stay exactly as it is, no version is made and it returns
// nil, nil. Errors are those of CheckAction, and a *errdef.FieldError when
// a removal would take what a staying unit needs.
func (s *Store) ApplyAction(ctx context.Context, repoID string, a Action) (*Version, error) {
	var out *Version
	var changed int
	err := s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		if a.Source != nil {
			// A copy reads its source version in several statements:
			// hold the source too, so that no retention or version
			// deletion folds that version meanwhile.
			if err := tx.lockRepositories(ctx, repoID, a.Source.RepositoryID); err != nil {
				return err
			}
		}
		repo, err := tx.lockRepository(ctx, repoID)
		if err != nil {
			return err
		}
		r, err := tx.resolveAction(ctx, repo, a, true)
		if err != nil {
			return err
		}
		ch, err := tx.closeChange(ctx, repo, r)
		if err != nil {
			return err
		}
		out, changed, err = tx.newVersion(ctx, repoID, ch, nil)
		return err
	})
	if errors.Is(err, ErrNoChange) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.analyzeAfter(ctx, "repository_contents", changed)
	return out, nil
}

// resolved is an action with its names resolved to unit ids: what to add
// and remove before recursion, and from which version.
type resolved struct {
	add       []int64
	remove    []int64
	removeAll bool
	// recursive says whether removals take what they referenced (all but
	// untag).
	recursive bool
	// removeField is the field a refused removal is reported on.
	removeField string
	// within, when set, is the version whose units alone the additions
	// bring with them (a copy's source): a manifest list a sync filtered
	// by platform brings only the children that version holds.
	within *VersionRef
	base   *int
}

// resolveAction resolves a's names against repo. With write it stores
// what the action creates (the tag unit of a tag action).
func (s *Store) resolveAction(ctx context.Context, repo *Repository, a Action, write bool) (*resolved, error) {
	latest := VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}
	r := &resolved{recursive: true}
	var err error
	switch a.Kind {
	case ActionTag:
		var id int64
		id, err = s.resolveTag(ctx, latest, a.Tag, a.Digest, write)
		r.add, r.within = []int64{id}, &latest
	case ActionUntag:
		r.recursive = false
		r.remove, err = s.resolveUntag(ctx, latest, a.Tag)
	case ActionAdd:
		r.add, err = s.resolveUnits(ctx, "content_units", a.Units)
	case ActionRemove:
		r.removeField = "content_units"
		r.remove, r.removeAll, err = s.resolveRemoval(ctx, "content_units", a.Units)
	case ActionCopyTags, ActionCopyManifests:
		var src VersionRef
		if src, err = s.sourceVersion(ctx, a.Source); err != nil {
			return nil, err
		}
		r.within = &src
		if a.Kind == ActionCopyTags {
			r.add, err = s.resolveCopyTags(ctx, a.Source, a.Names)
		} else {
			r.add, err = s.resolveCopyManifests(ctx, a.Source, a.Digests, a.MediaTypes)
		}
	case ActionModify:
		r.removeField = "remove_content_units"
		if r.add, err = s.resolveUnits(ctx, "add_content_units", a.Add); err != nil {
			return nil, err
		}
		if r.remove, r.removeAll, err = s.resolveRemoval(ctx, "remove_content_units", a.Remove); err != nil {
			return nil, err
		}
		if a.Base != nil {
			if _, err := s.Version(ctx, repo.ID, *a.Base); err != nil {
				return nil, fieldIfMissing(err, "base_version", "version %d of repository %q does not exist", *a.Base, repo.Name)
			}
			r.base = a.Base
		}
	default:
		return nil, errdef.New(errdef.ErrInvalid, "unknown repository action %q", a.Kind)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// fieldIfMissing turns errdef.ErrNotFound into a *errdef.FieldError about
// field with the given message.
func fieldIfMissing(err error, field, format string, args ...any) error {
	if errors.Is(err, errdef.ErrNotFound) {
		return errdef.Field(field, format, args...)
	}
	return err
}

// resolveTag finds the manifest or list with digest d in version v and,
// with write, stores tag name naming it; it returns the tag's id (0
// without write).
func (s *Store) resolveTag(ctx context.Context, v VersionRef, name string, d digest.Digest, write bool) (int64, error) {
	if err := content.ValidateTagName(name); err != nil {
		return 0, errdef.Field("tag", "%v", err)
	}
	if err := d.Validate(); err != nil {
		return 0, errdef.Field("digest", "%q is not a digest such as sha256:<64 hex digits>", d)
	}
	units, err := s.InVersion(ctx, v, d)
	if err != nil {
		return 0, err
	}
	var target *Content
	for i := range units {
		if units[i].Type == content.TypeManifest || units[i].Type == content.TypeManifestList {
			target = &units[i]
		}
	}
	if target == nil {
		if len(units) > 0 && units[0].Type == content.TypeBlob {
			return 0, errdef.Field("digest", "%s is a blob; a tag names a manifest or a manifest list", d)
		}
		return 0, errdef.Field("digest", "no manifest or manifest list with digest %s in the repository's latest version", d)
	}
	if !write {
		return 0, nil
	}
	tag, err := s.PutTag(ctx, name, target)
	if err != nil {
		return 0, err
	}
	return tag.ID, nil
}

func (s *Store) resolveUntag(ctx context.Context, v VersionRef, name string) ([]int64, error) {
	if err := content.ValidateTagName(name); err != nil {
		return nil, errdef.Field("tag", "%v", err)
	}
	tag, err := s.Tag(ctx, v, name)
	if err != nil {
		return nil, fieldIfMissing(err, "tag", "no tag %q in the repository's latest version", name)
	}
	return []int64{tag.ID}, nil
}

// resolveRemoval is resolveUnits, where a list of AllUnits alone means
// everything.
func (s *Store) resolveRemoval(ctx context.Context, field string, refs []UnitRef) ([]int64, bool, error) {
	for _, r := range refs {
		if r.ID == AllUnits {
			if len(refs) > 1 {
				return nil, false, errdef.Field(field, `"*" removes everything and comes alone`)
			}
			return nil, true, nil
		}
	}
	ids, err := s.resolveUnits(ctx, field, refs)
	return ids, false, err
}

// resolveUnits returns the ids of the units refs name, in order, each
// once; a unit that does not exist or is not of the type named is a
// *errdef.FieldError about field.
func (s *Store) resolveUnits(ctx context.Context, field string, refs []UnitRef) ([]int64, error) {
	uuids := make([]string, 0, len(refs))
	for _, r := range refs {
		uuids = append(uuids, r.ID)
	}
	byUUID := make(map[string]Content, len(refs))
	for chunk := range slices.Chunk(uuids, batch) {
		var units []Content
		if err := s.db.NewSelect().Model(&units).Column("id", "uuid", "type", "digest", "name").
			Where("uuid IN (?)", bun.In(chunk)).Scan(ctx); err != nil {
			return nil, err
		}
		for _, u := range units {
			byUUID[u.UUID] = u
		}
	}
	seen := make(map[int64]bool, len(refs))
	ids := make([]int64, 0, len(refs))
	for _, r := range refs {
		u, ok := byUUID[r.ID]
		if !ok {
			return nil, errdef.Field(field, "content unit %s does not exist", r.ID)
		}
		if r.Type != "" && u.Type != r.Type {
			return nil, errdef.Field(field, "content unit %s is a %s, not a %s", r.ID, u.Type, r.Type)
		}
		if !seen[u.ID] {
			seen[u.ID] = true
			ids = append(ids, u.ID)
		}
	}
	return ids, nil
}

// sourceVersion resolves a copy's source to a version.
func (s *Store) sourceVersion(ctx context.Context, src *Source) (VersionRef, error) {
	if src == nil {
		return VersionRef{}, errdef.Field("source_repository", "a source repository or repository version is required")
	}
	field := "source_repository"
	if src.Version != nil {
		field = "source_repository_version"
	}
	repo, err := s.Repository(ctx, src.RepositoryID)
	if err != nil {
		return VersionRef{}, fieldIfMissing(err, field, "repository %q does not exist", src.RepositoryID)
	}
	if src.Version == nil {
		return VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}, nil
	}
	if _, err := s.Version(ctx, repo.ID, *src.Version); err != nil {
		return VersionRef{}, fieldIfMissing(err, field, "version %d of repository %q does not exist", *src.Version, repo.Name)
	}
	return VersionRef{RepositoryID: repo.ID, Number: *src.Version}, nil
}

// resolveCopyTags returns the ids of the tags of the source named by names
// (all when nil); a name the source lacks is a *errdef.FieldError.
func (s *Store) resolveCopyTags(ctx context.Context, src *Source, names []string) ([]int64, error) {
	v, err := s.sourceVersion(ctx, src)
	if err != nil {
		return nil, err
	}
	q := func() *bun.SelectQuery {
		return s.db.NewSelect().TableExpr("repository_contents AS rc").
			Join("JOIN contents AS c ON c.id = rc.content_id").
			ColumnExpr("c.id, c.name").
			Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
			Where("rc.content_type IN (?)", bun.In(tagTypes))
	}
	type row struct {
		ID   int64  `bun:"id"`
		Name string `bun:"name"`
	}
	var rows []row
	if names == nil {
		if err := q().Scan(ctx, &rows); err != nil {
			return nil, err
		}
		return rowIDs(rows, func(r row) int64 { return r.ID }), nil
	}
	for _, n := range names {
		if err := content.ValidateTagName(n); err != nil {
			return nil, errdef.Field("names", "%v", err)
		}
	}
	for chunk := range slices.Chunk(names, batch) {
		var got []row
		if err := q().Where("c.name IN (?)", bun.In(chunk)).Scan(ctx, &got); err != nil {
			return nil, err
		}
		rows = append(rows, got...)
	}
	found := make(map[string]bool, len(rows))
	for _, r := range rows {
		found[r.Name] = true
	}
	var missing []string
	for _, n := range names {
		if !found[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, errdef.Field("names", "no tag %s in the source version", quoteList(missing, 5))
	}
	return rowIDs(rows, func(r row) int64 { return r.ID }), nil
}

// resolveCopyManifests returns the ids of the manifests and lists of the
// source with the given digests (all when nil) and media types (any when
// nil).
func (s *Store) resolveCopyManifests(ctx context.Context, src *Source, digests []digest.Digest, mediaTypes []string) ([]int64, error) {
	v, err := s.sourceVersion(ctx, src)
	if err != nil {
		return nil, err
	}
	for _, mt := range mediaTypes {
		if !slices.Contains(content.ManifestMediaTypes, mt) {
			return nil, errdef.Field("media_types", "%q is not a manifest or manifest list media type", mt)
		}
	}
	for _, d := range digests {
		if err := d.Validate(); err != nil {
			return nil, errdef.Field("digests", "%q is not a digest such as sha256:<64 hex digits>", d)
		}
	}
	q := func() *bun.SelectQuery {
		q := s.db.NewSelect().TableExpr("repository_contents AS rc").
			Join("JOIN contents AS c ON c.id = rc.content_id").
			ColumnExpr("c.id, c.digest").
			Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
			Where("rc.content_type IN (?)", bun.In([]content.Type{content.TypeManifest, content.TypeManifestList}))
		if len(mediaTypes) > 0 {
			q = q.Where("c.media_type IN (?)", bun.In(mediaTypes))
		}
		return q
	}
	type row struct {
		ID     int64         `bun:"id"`
		Digest digest.Digest `bun:"digest"`
	}
	var rows []row
	if digests == nil {
		if err := q().Scan(ctx, &rows); err != nil {
			return nil, err
		}
		return rowIDs(rows, func(r row) int64 { return r.ID }), nil
	}
	for chunk := range slices.Chunk(digests, batch) {
		var got []row
		if err := q().Where("c.digest IN (?)", bun.In(chunk)).Scan(ctx, &got); err != nil {
			return nil, err
		}
		rows = append(rows, got...)
	}
	found := make(map[digest.Digest]bool, len(rows))
	for _, r := range rows {
		found[r.Digest] = true
	}
	var missing []string
	for _, d := range digests {
		if !found[d] {
			missing = append(missing, d.String())
		}
	}
	if len(missing) > 0 {
		what := "manifest or manifest list"
		if len(mediaTypes) > 0 {
			what += " of the media types given"
		}
		return nil, errdef.Field("digests", "no %s %s in the source version", what, quoteList(missing, 3))
	}
	return rowIDs(rows, func(r row) int64 { return r.ID }), nil
}

func rowIDs[T any](rows []T, id func(T) int64) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = id(r)
	}
	return out
}

// quoteList quotes up to n items, saying how many more there are.
func quoteList(items []string, n int) string {
	shown := items[:min(n, len(items))]
	q := make([]string, len(shown))
	for i, it := range shown {
		q[i] = fmt.Sprintf("%q", it)
	}
	out := strings.Join(q, ", ")
	if len(items) > n {
		out += fmt.Sprintf(" and %d more", len(items)-n)
	}
	return out
}
