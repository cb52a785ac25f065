package repository

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
)

// Content is a stored content unit, shared by every repository holding it.
type Content struct {
	bun.BaseModel `bun:"table:contents"`

	// ID is the internal key used in membership rows.
	ID int64 `bun:"id,pk,autoincrement" json:"-"`
	// UUID is the unit's public identifier.
	UUID      string        `bun:"uuid" json:"id"`
	Type      content.Type  `bun:"type" json:"type"`
	Digest    digest.Digest `bun:"digest" json:"digest"`
	MediaType string        `bun:"media_type" json:"media_type"`
	Size      int64         `bun:"size" json:"size"`
	// Raw is the exact bytes of a manifest or manifest list.
	Raw           []byte   `bun:"raw" json:"-"`
	SchemaVersion int      `bun:"schema_version" json:"schema_version,omitempty"`
	Foreign       bool     `bun:"foreign_layer" json:"foreign,omitempty"`
	URLs          []string `bun:"urls" json:"urls,omitempty"`
	ArtifactType  string   `bun:"artifact_type" json:"artifact_type,omitempty"`
	// Subject is the digest of the manifest this one refers to (OCI 1.1).
	Subject digest.Digest `bun:"subject" json:"subject,omitempty"`
	// OnDemand is set on a blob recorded without its bytes: blob storage
	// does not hold them and they are fetched, when pulled, from a remote
	// its remote artifacts name (see lazy.go). It is never set on a unit
	// whose bytes are stored.
	OnDemand bool `bun:"on_demand" json:"on_demand,omitempty"`
	// Name is a tag's name; Digest of a tag is the digest of what it names.
	Name string `bun:"name" json:"name,omitempty"`
	// TaggedID is the unit a tag names.
	TaggedID  int64     `bun:"tagged_id,nullzero" json:"-"`
	CreatedAt time.Time `bun:"created_at" json:"created_at"`
}

// Ref is one entry a manifest or list points to: a config or layer blob, or
// a child manifest with its platform.
type Ref struct {
	bun.BaseModel `bun:"table:content_refs"`

	ParentID    int64             `bun:"parent_id,pk" json:"-"`
	Position    int               `bun:"position,pk" json:"position"`
	Role        string            `bun:"role" json:"role"`
	ChildDigest digest.Digest     `bun:"child_digest" json:"digest"`
	MediaType   string            `bun:"media_type" json:"media_type"`
	Size        int64             `bun:"size" json:"size"`
	Platform    *ocispec.Platform `bun:"platform" json:"platform,omitempty"`
}

// Ref roles.
const (
	RoleConfig   = "config"
	RoleLayer    = "layer"
	RoleManifest = "manifest"
)

// batch is how many rows one statement inserts or looks up.
const batch = 500

// PutBlobs records blob units (the bytes live in a storage.Driver) and
// returns them, stored, in the order given. Units already stored are
// returned as they are.
func (s *Store) PutBlobs(ctx context.Context, blobs []content.Blob) ([]Content, error) {
	units := make([]Content, len(blobs))
	for i, b := range blobs {
		if err := b.Digest.Validate(); err != nil {
			return nil, errdef.New(errdef.ErrInvalid, "blob digest %q: %v", b.Digest, err)
		}
		units[i] = Content{Type: content.TypeBlob, Digest: b.Digest, MediaType: b.MediaType, Size: b.Size, Foreign: b.Foreign, URLs: b.URLs}
	}
	out, err := s.putUnits(ctx, units)
	if err == nil {
		s.analyzeAfter(ctx, "contents", len(out))
	}
	return out, err
}

// PutDocument records a parsed manifest or manifest list with what it
// references, and returns the stored unit.
func (s *Store) PutDocument(ctx context.Context, doc content.Document) (*Content, error) {
	u, refs, err := documentUnit(doc)
	if err != nil {
		return nil, err
	}
	var out *Content
	err = s.InTx(ctx, func(ctx context.Context, tx *Store) error {
		units, err := tx.putUnits(ctx, []Content{u})
		if err != nil {
			return err
		}
		out = &units[0]
		for i := range refs {
			refs[i].ParentID, refs[i].Position = out.ID, i
		}
		if len(refs) > 0 {
			// Refs are a function of the bytes, so an existing set is the same.
			_, err = tx.db.NewInsert().Model(&refs).On("CONFLICT (parent_id, position) DO NOTHING").Exec(ctx)
		}
		return err
	})
	return out, err
}

// documentUnit returns the unit of a manifest or manifest list, not
// stored yet, and its refs, without parent or position.
func documentUnit(doc content.Document) (Content, []Ref, error) {
	u := Content{Type: doc.ContentType()}
	var refs []Ref
	switch d := doc.(type) {
	case *content.Manifest:
		u.Digest, u.MediaType, u.Raw, u.SchemaVersion = d.Digest, d.MediaType, d.Raw, d.SchemaVersion
		u.ArtifactType = d.ArtifactType
		if d.Subject != nil {
			u.Subject = d.Subject.Digest
		}
		if d.Config != nil {
			refs = append(refs, Ref{Role: RoleConfig, ChildDigest: d.Config.Digest, MediaType: d.Config.MediaType, Size: d.Config.Size})
		}
		for _, l := range d.Layers {
			refs = append(refs, Ref{Role: RoleLayer, ChildDigest: l.Digest, MediaType: l.MediaType, Size: l.Size})
		}
	case *content.ManifestList:
		u.Digest, u.MediaType, u.Raw, u.SchemaVersion = d.Digest, d.MediaType, d.Raw, d.SchemaVersion
		u.ArtifactType = d.ArtifactType
		if d.Subject != nil {
			u.Subject = d.Subject.Digest
		}
		for _, m := range d.Manifests {
			refs = append(refs, Ref{Role: RoleManifest, ChildDigest: m.Digest, MediaType: m.MediaType, Size: m.Size, Platform: m.Platform})
		}
	default:
		return Content{}, nil, errdef.New(errdef.ErrInvalid, "unknown document type %T", doc)
	}
	u.Size = int64(len(u.Raw))
	if err := u.Digest.Validate(); err != nil {
		return Content{}, nil, errdef.New(errdef.ErrInvalid, "document digest %q: %v", u.Digest, err)
	}
	return u, refs, nil
}

// PutTag records a tag unit naming target (a manifest or manifest list) and
// returns it. The tag's type follows the target's.
func (s *Store) PutTag(ctx context.Context, name string, target *Content) (*Content, error) {
	u, err := tagUnit(name, target)
	if err != nil {
		return nil, err
	}
	units, err := s.putUnits(ctx, []Content{u})
	if err != nil {
		return nil, err
	}
	return &units[0], nil
}

// tagUnit returns the unit, not stored yet, of a tag named name naming
// target.
func tagUnit(name string, target *Content) (Content, error) {
	if err := content.ValidateTagName(name); err != nil {
		return Content{}, errdef.New(errdef.ErrInvalid, "%v", err)
	}
	var typ content.Type
	switch target.Type {
	case content.TypeManifest:
		typ = content.TypeManifestTag
	case content.TypeManifestList:
		typ = content.TypeManifestListTag
	default:
		return Content{}, errdef.New(errdef.ErrInvalid, "a tag names a manifest or manifest list, not %s", target.Type)
	}
	if target.ID == 0 {
		return Content{}, errdef.New(errdef.ErrInvalid, "tag target %s is not stored", target.Digest)
	}
	return Content{Type: typ, Name: name, Digest: target.Digest, MediaType: target.MediaType, TaggedID: target.ID}, nil
}

// putUnits inserts the units that are not stored yet and reads back all of
// them, keyed by (type, digest, name).
func (s *Store) putUnits(ctx context.Context, units []Content) ([]Content, error) {
	now := time.Now().UTC()
	for i := range units {
		units[i].UUID = uuid.NewString()
		units[i].CreatedAt = now
	}
	for start := 0; start < len(units); start += batch {
		chunk := units[start:min(start+batch, len(units))]
		// A unit that conflicted may be deleted by orphan cleanup before
		// it is read back: insert it again.
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = s.putChunk(ctx, chunk); !errors.Is(err, errVanished) {
				break
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return units, nil
}

// errVanished: a unit was deleted between its insert and its read-back.
var errVanished = errors.New("deleted meanwhile")

// putChunk inserts the units of chunk not stored yet and reads back all
// of them, in place.
func (s *Store) putChunk(ctx context.Context, chunk []Content) error {
	// bun may reslice what it inserts when RETURNING skips conflicting
	// rows, so insert a copy and keep chunk aliased to units. Units read
	// back by an earlier attempt are not inserted again.
	var ins []Content
	for _, u := range chunk {
		if u.ID == 0 {
			ins = append(ins, u)
		}
	}
	if _, err := s.db.NewInsert().Model(&ins).On("CONFLICT (type, digest, name) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("store content: %w", err)
	}
	// Read back: ON CONFLICT DO NOTHING does not return existing rows.
	// One query per type with "digest IN" uses the natural-key index on
	// every dialect (row-value IN lists do not, on PostgreSQL).
	type key struct {
		t content.Type
		d digest.Digest
		n string
	}
	byKey := make(map[key][]int, len(chunk))
	digests := map[content.Type][]digest.Digest{}
	var names []string
	for i, u := range chunk {
		k := key{u.Type, u.Digest, u.Name}
		if len(byKey[k]) == 0 {
			if u.Name != "" {
				names = append(names, u.Name)
			} else {
				digests[u.Type] = append(digests[u.Type], u.Digest)
			}
		}
		byKey[k] = append(byKey[k], i)
	}
	queries := make([]*bun.SelectQuery, 0, len(digests)+1)
	for t, ds := range digests {
		queries = append(queries, s.db.NewSelect().Where("type = ? AND digest IN (?)", t, bun.In(ds)))
	}
	if len(names) > 0 {
		// Tags by name: many tags may name one digest (every tag of a
		// repository that tags one image many times), while a name
		// names few digests. The name index answers, on every dialect.
		queries = append(queries, s.db.NewSelect().Where("name <> '' AND name IN (?)", bun.In(names)))
	}
	for _, q := range queries {
		var stored []Content
		q = q.Model(&stored).ExcludeColumn("raw")
		if _, inTx := s.db.(bun.Tx); inTx && s.db.Dialect().Name() == dialect.PG {
			// Held until the caller's transaction ends: orphan cleanup
			// does not delete a unit about to be put in a version.
			q = q.For("KEY SHARE")
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("read back content: %w", err)
		}
		for _, st := range stored {
			for _, i := range byKey[key{st.Type, st.Digest, st.Name}] {
				raw := chunk[i].Raw
				chunk[i] = st
				chunk[i].Raw = raw
			}
		}
	}
	for _, u := range chunk {
		if u.ID == 0 {
			return fmt.Errorf("store content %s %s: %w", u.Type, u.Digest, errVanished)
		}
	}
	return nil
}

// ContentByID returns the unit with the given internal id, with Raw.
func (s *Store) ContentByID(ctx context.Context, id int64) (*Content, error) {
	c := new(Content)
	if err := s.db.NewSelect().Model(c).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "content %d", id)
	}
	return c, nil
}

// ContentByUUID returns the unit with the given public id, with Raw.
func (s *Store) ContentByUUID(ctx context.Context, id string) (*Content, error) {
	c := new(Content)
	if err := s.db.NewSelect().Model(c).Where("uuid = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "content %q", id)
	}
	return c, nil
}

// ContentByDigest returns the blob, manifest or manifest list of type t with
// digest d, with Raw.
func (s *Store) ContentByDigest(ctx context.Context, t content.Type, d digest.Digest) (*Content, error) {
	c := new(Content)
	if err := s.db.NewSelect().Model(c).Where("type = ? AND digest = ? AND name = ''", t, d).Scan(ctx); err != nil {
		return nil, notFound(err, "%s %s", t, d)
	}
	return c, nil
}

// Refs returns what a manifest or list points to, in document order.
func (s *Store) Refs(ctx context.Context, parentID int64) ([]Ref, error) {
	var refs []Ref
	err := s.db.NewSelect().Model(&refs).Where("parent_id = ?", parentID).Order("position").Scan(ctx)
	return refs, err
}
