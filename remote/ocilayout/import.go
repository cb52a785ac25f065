package ocilayout

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/content/oci"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// BlobStore is what Import needs of blob storage: whether a blob is
// stored, and storing one with its digest and size checked.
type BlobStore interface {
	storage.Stater
	storage.Putter
}

// ImportOptions tune an import.
type ImportOptions struct {
	// Progress receives reports CodeManifests, CodeBlobs and CodeBytes;
	// nil records none.
	Progress *task.Progress
}

// ImportResult counts what an import read and made.
type ImportResult struct {
	// Version is the new repository version; nil when the repository's
	// latest version held everything already.
	Version *repository.Version
	// Tags, Manifests (manifests and lists) and Blobs count what the
	// layout's index names; BlobsStored and BytesStored the blobs that
	// were not stored before and were copied in.
	Tags, Manifests, Blobs int
	BlobsStored            int
	BytesStored            int64
}

// layoutSource is an opened layout: oras-go's read-only store, and the
// entries of its index.json.
type layoutSource struct {
	store *oci.ReadOnlyStore
	index ocispec.Index
}

// openLayout opens the layout at src, a directory or a tar archive, and
// reads its index.
func openLayout(ctx context.Context, src string) (*layoutSource, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, errdef.Field("path", "%s: %v", src, errors.Unwrap(err))
	}
	var s layoutSource
	var raw []byte
	if fi.IsDir() {
		s.store, err = oci.NewFromFS(ctx, os.DirFS(src))
		if err == nil {
			raw, err = os.ReadFile(filepath.Join(src, ocispec.ImageIndexFile))
		}
	} else {
		s.store, err = oci.NewFromTar(ctx, src)
		if err == nil {
			raw, err = readTarFile(src, ocispec.ImageIndexFile)
		}
	}
	if err != nil {
		return nil, errdef.Field("path", "%s is not an OCI image layout: %v", src, err)
	}
	if err := json.Unmarshal(raw, &s.index); err != nil {
		return nil, errdef.Field("path", "%s: index.json: %v", src, err)
	}
	return &s, nil
}

// readTarFile returns the file name of the tar archive at src.
func readTarFile(src, name string) ([]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s in the archive", name)
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) == name {
			return io.ReadAll(io.LimitReader(tr, content.MaxManifestSize))
		}
	}
}

// gathered is what an import found under the index's entries.
type gathered struct {
	docs  []content.Document // children before parents
	blobs []content.Blob
	tags  map[string]digest.Digest
	seen  map[digest.Digest]bool
}

// Import reads the OCI image layout at src (a directory, or a tar archive
// of one) and makes a new version of repository repoID: its latest
// version plus every manifest, list and blob the layout's index reaches,
// and a tag for each index entry named by an
// org.opencontainers.image.ref.name annotation (a tag, or a reference
// ending in ":tag"), replacing a tag of that name. Every manifest is
// checked against its digest and size before anything is recorded, and
// every blob not yet stored is streamed into blobs, which checks digest
// and size; a mismatch, a missing manifest or blob (other than a foreign
// layer) fails the import without a new version. A layout that is not one,
// or not readable, is a *errdef.FieldError about "path".
func Import(ctx context.Context, repos *repository.Store, blobs BlobStore, repoID, src string, opts ImportOptions) (*ImportResult, error) {
	if _, err := repos.Repository(ctx, repoID); err != nil {
		return nil, err
	}
	l, err := openLayout(ctx, src)
	if err != nil {
		return nil, err
	}
	g := &gathered{tags: map[string]digest.Digest{}, seen: map[digest.Digest]bool{}}
	docRep := opts.Progress.Report(CodeManifests, "Reading manifests", int64(len(l.index.Manifests)))
	for _, desc := range l.index.Manifests {
		if err := g.walk(ctx, l.store, desc, docRep); err != nil {
			docRep.End(endState(ctx))
			return nil, err
		}
		if ref := desc.Annotations[ocispec.AnnotationRefName]; ref != "" {
			tag, err := tagOf(ref)
			if err != nil {
				docRep.End(task.StateFailed)
				return nil, err
			}
			g.tags[tag] = desc.Digest
		}
	}
	docRep.SetTotal(int64(len(g.docs)))
	docRep.Complete()
	res := &ImportResult{Tags: len(g.tags), Manifests: len(g.docs), Blobs: len(g.blobs)}
	// Leased before they are looked for in storage, until the version
	// holds them: orphan cleanup deletes none meanwhile (see
	// repository.Store.LeaseBlobs).
	var stored []digest.Digest
	for _, b := range g.blobs {
		if !b.Foreign {
			stored = append(stored, b.Digest)
		}
	}
	lease, err := repos.LeaseBlobs(ctx, stored)
	if err != nil {
		return nil, err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	if err := copyBlobs(ctx, l.store, blobs, g.blobs, res, opts.Progress); err != nil {
		return nil, err
	}
	v, err := record(ctx, repos, repoID, g)
	if err != nil {
		return nil, err
	}
	res.Version = v
	return res, nil
}

func endState(ctx context.Context) task.State {
	if ctx.Err() != nil {
		return task.StateCanceled
	}
	return task.StateFailed
}

// tagOf returns the tag an index entry's ref name gives: the name itself
// when it is a tag, else what follows the last ':' of a reference such as
// registry.example/app:v1.
func tagOf(ref string) (string, error) {
	if content.ValidateTagName(ref) == nil {
		return ref, nil
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
		if tag := ref[i+1:]; content.ValidateTagName(tag) == nil {
			return tag, nil
		}
	}
	return "", errdef.Field("path", "index.json names an image %q, which is not a tag", ref)
}

// walk reads and checks the document desc names and, for a list, its
// children; it collects the blobs of manifests.
func (g *gathered) walk(ctx context.Context, src *oci.ReadOnlyStore, desc ocispec.Descriptor, rep *task.Report) error {
	if g.seen[desc.Digest] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := desc.Digest.Validate(); err != nil {
		return errdef.Field("path", "index entry with digest %q: %v", desc.Digest, err)
	}
	if desc.Size > content.MaxManifestSize {
		return errdef.Field("path", "manifest %s is %d bytes, the limit is %d", desc.Digest, desc.Size, content.MaxManifestSize)
	}
	rc, err := src.Fetch(ctx, desc)
	if err != nil {
		return errdef.Field("path", "manifest %s: %v", desc.Digest, err)
	}
	raw, err := io.ReadAll(io.LimitReader(rc, content.MaxManifestSize+1))
	rc.Close()
	if err != nil {
		return err
	}
	if int64(len(raw)) != desc.Size {
		return errdef.Field("path", "manifest %s is %d bytes, the index says %d", desc.Digest, len(raw), desc.Size)
	}
	doc, err := content.ParseDigest(desc.MediaType, raw, desc.Digest)
	if err != nil {
		return errdef.Field("path", "manifest %s: %v", desc.Digest, err)
	}
	g.seen[desc.Digest] = true
	switch d := doc.(type) {
	case *content.ManifestList:
		for _, child := range d.Manifests {
			if err := g.walk(ctx, src, child, rep); err != nil {
				return err
			}
		}
	case *content.Manifest:
		if d.Config != nil {
			g.addBlob(*d.Config)
		}
		for _, b := range d.Layers {
			g.addBlob(b)
		}
	}
	g.docs = append(g.docs, doc)
	rep.Increment()
	return nil
}

func (g *gathered) addBlob(b content.Blob) {
	if g.seen[b.Digest] {
		return
	}
	g.seen[b.Digest] = true
	g.blobs = append(g.blobs, b)
}

// copyBlobs streams into blobs every blob not stored yet, four at a time.
// A foreign layer the layout does not hold is recorded without bytes, as
// a sync records it.
func copyBlobs(ctx context.Context, src *oci.ReadOnlyStore, blobs BlobStore, list []content.Blob, res *ImportResult, progress *task.Progress) error {
	var missing []content.Blob
	var total int64
	for _, b := range list {
		if _, err := blobs.Stat(ctx, b.Digest); err == nil {
			continue
		} else if !errors.Is(err, errdef.ErrNotFound) {
			return err
		}
		if ok, err := src.Exists(ctx, ocispec.Descriptor{Digest: b.Digest}); err != nil || !ok {
			if b.Foreign {
				continue
			}
			return errdef.Field("path", "blob %s is not in the layout", b.Digest)
		}
		missing = append(missing, b)
		total += max(b.Size, 0)
	}
	blobRep := progress.Report(CodeBlobs, "Storing blobs", int64(len(missing)))
	byteRep := progress.Report(CodeBytes, "Storing bytes", total)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(4)
	for _, b := range missing {
		eg.Go(func() error {
			rc, err := src.Fetch(ectx, ocispec.Descriptor{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType})
			if err != nil {
				return err
			}
			defer rc.Close()
			if err := blobs.Put(ectx, b.Digest, b.Size, &counting{r: contextReader{ectx, rc}, rep: byteRep}); err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			blobRep.Increment()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		blobRep.End(endState(ctx))
		byteRep.End(endState(ctx))
		if errors.Is(err, storage.ErrDigestMismatch) || errors.Is(err, storage.ErrSizeMismatch) {
			return errdef.Field("path", "%v", err)
		}
		return err
	}
	blobRep.Complete()
	byteRep.Complete()
	res.BlobsStored = len(missing)
	for _, b := range missing {
		res.BytesStored += max(b.Size, 0)
	}
	return nil
}

// record stores the units and makes the new version.
func record(ctx context.Context, repos *repository.Store, repoID string, g *gathered) (*repository.Version, error) {
	var stored []digest.Digest
	for _, b := range g.blobs {
		if !b.Foreign {
			stored = append(stored, b.Digest)
		}
	}
	// Units recorded on demand now have their bytes.
	if err := repos.MarkStored(ctx, stored); err != nil {
		return nil, err
	}
	units, err := repos.PutBlobs(ctx, g.blobs)
	if err != nil {
		return nil, err
	}
	add := make([]int64, 0, len(units)+len(g.docs)+len(g.tags))
	for _, u := range units {
		add = append(add, u.ID)
	}
	docs := map[digest.Digest]*repository.Content{}
	for _, d := range g.docs {
		u, err := repos.PutDocument(ctx, d)
		if err != nil {
			return nil, err
		}
		docs[u.Digest] = u
		add = append(add, u.ID)
	}
	for name, d := range g.tags {
		u, err := repos.PutTag(ctx, name, docs[d])
		if err != nil {
			return nil, err
		}
		add = append(add, u.ID)
	}
	v, err := repos.NewVersion(ctx, repoID, repository.Change{Add: add})
	if errors.Is(err, repository.ErrNoChange) {
		return nil, nil
	}
	return v, err
}
