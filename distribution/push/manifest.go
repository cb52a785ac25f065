package push

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// Manifest is a manifest or manifest list to push.
type Manifest struct {
	// MediaType is the Content-Type it was sent with.
	MediaType string
	// Raw is its exact bytes, at most content.MaxManifestSize.
	Raw []byte
	// Reference is a tag, or the digest Raw must have.
	Reference string
	// Tags are further tags to point at it (the spec's ?tag= parameters).
	Tags []string
}

// Pushed is what PutManifest stored.
type Pushed struct {
	// Digest is the manifest's digest.
	Digest digest.Digest
	// Tags are the tags now pointing at it, Reference's first when it is a
	// tag.
	Tags []string
	// Subject is the manifest's subject (OCI 1.1 referrers), if any.
	Subject *ocispec.Descriptor
	// Version is the new repository version; nil when the repository
	// already held exactly this.
	Version *repository.Version
}

// PutManifest pushes m into the push repository at name, which the first
// push creates ("Pushing manifests"). The manifest is validated; every blob
// and child manifest it names must be in the repository, staged or in its
// latest version (non-distributable layers excepted); and one new version
// holds it, its tags and the blobs it references, which are then no longer
// staged. Errors wrap errdef.ErrManifestInvalid, ErrDigestInvalid,
// ErrManifestTooLarge, ErrTagInvalid, ErrManifestBlobUnknown (naming the
// digest), or those of Target.
func (s *Service) PutManifest(ctx context.Context, name string, m Manifest) (*Pushed, error) {
	want, tags, err := manifestRefs(m)
	if err != nil {
		return nil, err
	}
	doc, err := parseManifest(m, want)
	if err != nil {
		return nil, err
	}
	repo, err := s.Target(ctx, name, true)
	if err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, name, 0); err != nil {
		return nil, err
	}
	// Leased before they are looked for, so that orphan cleanup deletes
	// none of the blobs found (see repository.Store.LeaseBlobs).
	release, err := s.lease(ctx, blobDigests(doc)...)
	if err != nil {
		return nil, err
	}
	defer release()
	add, blobs, subject, err := s.references(ctx, repo.ID, doc)
	if err != nil {
		return nil, err
	}
	unit, v, err := s.commitManifest(ctx, name, repo.ID, doc, add, blobs, tags)
	if err != nil {
		return nil, err
	}
	// The blobs are in a version now; unstaged only after it committed, so
	// that a concurrent push always finds them (see heldBlobs).
	if err := s.unstage(ctx, repo.ID, blobs); err != nil {
		return nil, err
	}
	return &Pushed{Digest: unit.Digest, Tags: tags, Subject: subject, Version: v}, nil
}

// commitManifest records doc, the blobs it uses and its tags, and makes
// the version that holds them with the children (of a list), in one
// transaction, the children still in the repository: orphan
// cleanup never sees the units between their writing and the version.
func (s *Service) commitManifest(ctx context.Context, name, repoID string, doc content.Document, children []int64, blobs []content.Blob, tags []string) (*repository.Content, *repository.Version, error) {
	// In digest order, so that concurrent pushes sharing blobs take their
	// rows' locks in one order.
	sorted := slices.Clone(blobs)
	slices.SortFunc(sorted, func(a, b content.Blob) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	var unit *repository.Content
	var v *repository.Version
	err := s.repos.InTx(ctx, func(ctx context.Context, tx *repository.Store) error {
		units, err := tx.PutBlobs(ctx, sorted)
		if err != nil {
			return err
		}
		add := append(slices.Clone(children), ids(units)...)
		if unit, err = tx.PutDocument(ctx, doc); err != nil {
			return err
		}
		add = append(add, unit.ID)
		for _, t := range tags {
			tag, err := tx.PutTag(ctx, t, unit)
			if err != nil {
				return err
			}
			add = append(add, tag.ID)
		}
		// The children of a list were found in the latest version before
		// the repository was locked: a removal may have taken them (and
		// what only they used) since, and adding them back alone would
		// leave a manifest without its blobs.
		v, err = tx.NewVersion(ctx, repoID, repository.Change{Add: add, Need: children})
		return err
	})
	switch {
	case errors.Is(err, repository.ErrNoChange):
		v, err = nil, nil
	case errors.Is(err, repository.ErrGone):
		err = errdef.New(errdef.ErrManifestBlobUnknown, "%v", err)
	}
	s.registry.Forget(name)
	return unit, v, err
}

// blobDigests returns the digests of the blobs a manifest stores (not its
// foreign layers); none for a list.
func blobDigests(doc content.Document) []digest.Digest {
	m, ok := doc.(*content.Manifest)
	if !ok {
		return nil
	}
	var ds []digest.Digest
	if m.Config != nil {
		ds = append(ds, m.Config.Digest)
	}
	for _, l := range m.Layers {
		if !l.Foreign {
			ds = append(ds, l.Digest)
		}
	}
	return ds
}

// manifestRefs reads m's reference and tags: the digest the bytes must
// have (empty for a tag) and every tag to set.
func manifestRefs(m Manifest) (digest.Digest, []string, error) {
	var want digest.Digest
	var tags []string
	if d, err := digest.Parse(m.Reference); err == nil {
		if err := validDigest(d); err != nil {
			return "", nil, err
		}
		want = d
	} else {
		if err := content.ValidateTagName(m.Reference); err != nil {
			return "", nil, errdef.New(errdef.ErrTagInvalid, "%v", err)
		}
		tags = append(tags, m.Reference)
	}
	for _, t := range m.Tags {
		if err := content.ValidateTagName(t); err != nil {
			return "", nil, errdef.New(errdef.ErrTagInvalid, "%v", err)
		}
		tags = append(tags, t)
	}
	return want, tags, nil
}

func parseManifest(m Manifest, want digest.Digest) (content.Document, error) {
	doc, err := content.ParseDigest(m.MediaType, m.Raw, want)
	switch {
	case err == nil:
		return doc, nil
	case errors.Is(err, content.ErrDigestMismatch):
		return nil, errdef.New(errdef.ErrDigestInvalid, "%v", err)
	case errors.Is(err, content.ErrTooLarge):
		return nil, errdef.New(errdef.ErrManifestTooLarge, "%v", err)
	}
	return nil, errdef.New(errdef.ErrManifestInvalid, "%v", err)
}

// references checks that what doc references is in repository repoID and
// returns the units to add with it (child manifests), the blobs to record
// (with sizes known) and its subject.
func (s *Service) references(ctx context.Context, repoID string, doc content.Document) ([]int64, []content.Blob, *ocispec.Descriptor, error) {
	switch m := doc.(type) {
	case *content.Manifest:
		blobs, err := s.manifestBlobs(ctx, repoID, m)
		return nil, blobs, m.Subject, err
	case *content.ManifestList:
		add, err := s.children(ctx, repoID, m)
		return add, nil, m.Subject, err
	}
	return nil, nil, nil, nil
}

func (s *Service) manifestBlobs(ctx context.Context, repoID string, m *content.Manifest) ([]content.Blob, error) {
	refs := m.Layers
	if m.Config != nil {
		refs = append([]content.Blob{*m.Config}, refs...)
	}
	var want []digest.Digest
	for _, b := range refs {
		if !b.Foreign {
			want = append(want, b.Digest)
		}
	}
	held, err := s.heldBlobs(ctx, repoID, want)
	if err != nil {
		return nil, err
	}
	blobs := make([]content.Blob, 0, len(refs))
	for _, b := range refs {
		if b.Foreign {
			blobs = append(blobs, b)
			continue
		}
		if !held[b.Digest] {
			return nil, errdef.New(errdef.ErrManifestBlobUnknown, "blob %s is not in the repository", b.Digest)
		}
		if b.Size < 0 {
			info, err := s.blobs.Stat(ctx, b.Digest)
			if err != nil {
				return nil, err
			}
			b.Size = info.Size
		}
		blobs = append(blobs, b)
	}
	return blobs, nil
}

func (s *Service) children(ctx context.Context, repoID string, l *content.ManifestList) ([]int64, error) {
	repo, err := s.repos.Repository(ctx, repoID)
	if err != nil {
		return nil, err
	}
	var add []int64
	for _, child := range l.Manifests {
		units, err := s.repos.InVersion(ctx, latest(repo), child.Digest, content.TypeManifest, content.TypeManifestList)
		if err != nil {
			return nil, err
		}
		if len(units) == 0 {
			return nil, errdef.New(errdef.ErrManifestBlobUnknown, "child manifest %s is not in the repository", child.Digest)
		}
		add = append(add, ids(units)...)
	}
	return add, nil
}

// unstage drops the staged rows of blobs in repository repoID.
func (s *Service) unstage(ctx context.Context, repoID string, blobs []content.Blob) error {
	if len(blobs) == 0 {
		return nil
	}
	ds := make([]digest.Digest, len(blobs))
	for i, b := range blobs {
		ds[i] = b.Digest
	}
	_, err := s.db.NewDelete().Model((*stagedBlob)(nil)).
		Where("repository_id = ? AND digest IN (?)", repoID, bun.In(ds)).Exec(ctx)
	return err
}

// DeleteManifest deletes from the push repository at name, in a new
// version, the manifest a digest names together with the tags naming it,
// or the tag a tag names. A reference the repository does not hold is
// errdef.ErrManifestUnknown.
func (s *Service) DeleteManifest(ctx context.Context, name, reference string) error {
	repo, err := s.Target(ctx, name, false)
	if err != nil {
		return err
	}
	var remove []repository.Content
	if d, perr := digest.Parse(reference); perr == nil {
		remove, err = s.repos.InVersion(ctx, latest(repo), d,
			content.TypeManifest, content.TypeManifestList, content.TypeManifestTag, content.TypeManifestListTag)
	} else {
		if content.ValidateTagName(reference) != nil {
			return errdef.New(errdef.ErrTagInvalid, "invalid tag %q", reference)
		}
		remove, err = s.tag(ctx, latest(repo), reference)
	}
	if err != nil {
		return err
	}
	if len(remove) == 0 {
		return errdef.New(errdef.ErrManifestUnknown, "%s:%s", name, reference)
	}
	_, err = s.newVersion(ctx, name, repo.ID, repository.Change{Remove: ids(remove)})
	return err
}

// tag returns the tag unit named name in version v, if any.
func (s *Service) tag(ctx context.Context, v repository.VersionRef, name string) ([]repository.Content, error) {
	t, err := s.repos.Tag(ctx, v, name)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []repository.Content{*t}, nil
}
