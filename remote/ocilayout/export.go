// Package ocilayout exports repository versions to OCI image layouts and
// imports OCI image layouts into new repository versions (OCI image spec,
// "OCI Image Layout Specification"), for moving images where no network
// reaches: a directory, or a tar archive of one, that skopeo, oras, podman
// and containerd read and write.
//
// Export writes manifests, manifest lists and blobs byte for byte as they
// are stored, so every digest is unchanged, through oras-go's content/oci
// storage, and an index.json naming each tag with the
// org.opencontainers.image.ref.name annotation. Import reads a layout
// with oras-go's content/oci, checks every manifest against its digest and
// size and streams every blob it does not hold yet into blob storage,
// which checks digest and size too, then makes one new repository version.
// Both run in-process, or as durable tasks (ExportTask, ImportTask).
package ocilayout

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/oci"
	oraserr "oras.land/oras-go/v2/errdef"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// Progress report codes of exports and imports.
const (
	CodeManifests = "ocilayout.manifests"
	CodeBlobs     = "ocilayout.blobs"
	CodeBytes     = "ocilayout.bytes"
)

// ExportOptions tune an export.
type ExportOptions struct {
	// Tags, when not empty, exports only these tags and what they name;
	// by default every tag is exported, and every manifest or list of the
	// version no tag or list reaches, untagged.
	Tags []string
	// Progress receives reports CodeManifests, CodeBlobs and CodeBytes;
	// nil records none.
	Progress *task.Progress
}

// ExportResult counts what an export wrote.
type ExportResult struct {
	// Path is the layout written: a directory, or a tar archive.
	Path string
	// Tags, Manifests (manifests and lists) and Blobs count what the
	// layout holds, and Bytes the blob and manifest bytes.
	Tags, Manifests, Blobs int
	Bytes                  int64
	// Skipped names what could not go into a layout: Docker schema 1
	// manifests (and their tags), which OCI layouts do not hold.
	Skipped []string
}

// IsTar reports whether path names a tar archive rather than a directory
// layout: it ends in ".tar".
func IsTar(path string) bool { return strings.HasSuffix(path, ".tar") }

// node is a manifest or list to export, or a blob.
type node struct {
	unit *repository.Content
	desc ocispec.Descriptor
}

// plan is what an export writes: the roots index.json names and every
// document and blob under them, children before parents.
type plan struct {
	roots   []ocispec.Descriptor
	docs    []node
	blobs   []node
	tags    int
	skipped []string
}

// Export writes version v of a repository, or the tags opts names, to an
// OCI image layout at dst: a directory that must not exist or be empty, or
// a tar archive when dst ends in ".tar" (which must not exist). The layout
// is written beside dst and renamed into place at the end, so a failed or
// canceled export leaves nothing at dst. A version or tag that does not
// exist is errdef.ErrNotFound; dst taken is errdef.ErrConflict; a blob
// whose bytes are not in blobs (recorded on demand and never fetched)
// fails the export. Foreign layers, which are never stored, are left out
// of the layout, as the image spec allows.
func Export(ctx context.Context, repos *repository.Store, blobs storage.Opener, v repository.VersionRef, dst string, opts ExportOptions) (*ExportResult, error) {
	if err := checkDestination(dst); err != nil {
		return nil, err
	}
	if _, err := repos.Version(ctx, v.RepositoryID, v.Number); err != nil {
		return nil, err
	}
	p, err := newPlan(ctx, repos, v, opts.Tags)
	if err != nil {
		return nil, err
	}
	tmp := dst + ".partial-" + randomSuffix()
	defer os.RemoveAll(tmp)
	res, err := p.write(ctx, repos, blobs, tmp, opts.Progress)
	if err != nil {
		return nil, err
	}
	res.Path = dst
	if IsTar(dst) {
		if err := tarDir(tmp, tmp+".tar"); err != nil {
			os.Remove(tmp + ".tar")
			return nil, fmt.Errorf("export: write %s: %w", dst, err)
		}
		defer os.Remove(tmp + ".tar")
		return res, install(tmp+".tar", dst)
	}
	return res, install(tmp, dst)
}

// checkDestination refuses a destination that is taken or has no parent.
func checkDestination(dst string) error {
	if dst == "" {
		return errdef.Field("path", "This field may not be blank.")
	}
	if fi, err := os.Stat(filepath.Dir(filepath.Clean(dst))); err != nil || !fi.IsDir() {
		return errdef.Field("path", "The directory %s does not exist.", filepath.Dir(filepath.Clean(dst)))
	}
	fi, err := os.Stat(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case IsTar(dst) || !fi.IsDir():
		return errdef.FieldConflict("path", "%s already exists.", dst)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return errdef.FieldConflict("path", "%s already exists and is not empty.", dst)
	}
	return nil
}

// install moves the finished layout into place: dst must still not be
// taken (an empty directory is replaced).
func install(from, dst string) error {
	if err := checkDestination(dst); err != nil {
		return err
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	return os.Rename(from, dst)
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newPlan finds the roots of an export and walks down from them.
func newPlan(ctx context.Context, repos *repository.Store, v repository.VersionRef, only []string) (*plan, error) {
	type tagged struct {
		name string
		unit *repository.Content
	}
	var tags []tagged
	var docs []repository.Content
	for c, err := range repos.Contents(ctx, repository.ContentFilter{In: &v}) {
		if err != nil {
			return nil, err
		}
		switch c.Type {
		case content.TypeManifestTag, content.TypeManifestListTag:
			tags = append(tags, tagged{name: c.Name, unit: &c})
		case content.TypeManifest, content.TypeManifestList:
			docs = append(docs, c)
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].name < tags[j].name })
	if len(only) > 0 {
		var kept []tagged
		for _, name := range only {
			i := slices.IndexFunc(tags, func(t tagged) bool { return t.name == name })
			if i < 0 {
				return nil, errdef.New(errdef.ErrNotFound, "tag %q is not in version %d", name, v.Number)
			}
			kept = append(kept, tags[i])
		}
		tags = kept
	}
	p := &plan{}
	w := &walker{repos: repos, seen: map[digest.Digest]bool{}, p: p}
	reached := map[digest.Digest]bool{}
	for _, t := range tags {
		target, err := repos.ContentByID(ctx, t.unit.TaggedID)
		if err != nil {
			return nil, err
		}
		if target.SchemaVersion == 1 {
			p.skipped = append(p.skipped, fmt.Sprintf("tag %s: Docker schema 1 manifest %s", t.name, target.Digest))
			continue
		}
		desc, err := w.walk(ctx, target, reached)
		if err != nil {
			return nil, err
		}
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: t.name}
		p.roots = append(p.roots, desc)
		p.tags++
	}
	if len(only) > 0 {
		return p, nil
	}
	// Untagged documents no list reaches, such as images pushed by digest.
	children := map[digest.Digest]bool{}
	for _, d := range docs {
		if d.Type != content.TypeManifestList {
			continue
		}
		refs, err := repos.Refs(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			children[r.ChildDigest] = true
		}
	}
	for _, d := range docs {
		if reached[d.Digest] || children[d.Digest] {
			continue
		}
		if d.SchemaVersion == 1 {
			p.skipped = append(p.skipped, fmt.Sprintf("Docker schema 1 manifest %s", d.Digest))
			continue
		}
		unit, err := repos.ContentByID(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		desc, err := w.walk(ctx, unit, reached)
		if err != nil {
			return nil, err
		}
		p.roots = append(p.roots, desc)
	}
	return p, nil
}

// walker collects documents and blobs under the roots, each once.
type walker struct {
	repos *repository.Store
	seen  map[digest.Digest]bool
	p     *plan
}

// walk adds unit (a manifest or list, Raw loaded) and what it names,
// children first, and returns its descriptor.
func (w *walker) walk(ctx context.Context, unit *repository.Content, reached map[digest.Digest]bool) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: unit.MediaType, Digest: unit.Digest, Size: int64(len(unit.Raw)), ArtifactType: unit.ArtifactType}
	reached[unit.Digest] = true
	if w.seen[unit.Digest] {
		return desc, nil
	}
	w.seen[unit.Digest] = true
	refs, err := w.repos.Refs(ctx, unit.ID)
	if err != nil {
		return desc, err
	}
	for _, r := range refs {
		if w.seen[r.ChildDigest] {
			continue
		}
		if r.Role == repository.RoleManifest {
			typ := content.TypeManifest
			if content.IsManifestList(r.MediaType) {
				typ = content.TypeManifestList
			}
			child, err := w.repos.ContentByDigest(ctx, typ, r.ChildDigest)
			if errors.Is(err, errdef.ErrNotFound) {
				// A sync with include_platforms keeps lists whole but
				// leaves children out; a layout of them would be too.
				return desc, errdef.New(errdef.ErrConflict, "list %s names manifest %s, which is not stored "+
					"(a sync with include_platforms left it out): an OCI layout of the list would be incomplete; "+
					"export other tags, or sync every platform of the list first", unit.Digest, r.ChildDigest)
			}
			if err != nil {
				return desc, fmt.Errorf("%s names %s: %w", unit.Digest, r.ChildDigest, err)
			}
			if child, err = w.repos.ContentByID(ctx, child.ID); err != nil {
				return desc, err
			}
			if _, err := w.walk(ctx, child, reached); err != nil {
				return desc, err
			}
			continue
		}
		blob, err := w.repos.ContentByDigest(ctx, content.TypeBlob, r.ChildDigest)
		if err != nil {
			return desc, fmt.Errorf("%s names blob %s: %w", unit.Digest, r.ChildDigest, err)
		}
		w.seen[r.ChildDigest] = true
		if blob.Foreign {
			continue // never stored; the layout may leave it out
		}
		w.p.blobs = append(w.p.blobs, node{unit: blob, desc: ocispec.Descriptor{MediaType: r.MediaType, Digest: blob.Digest, Size: blob.Size}})
	}
	w.p.docs = append(w.p.docs, node{unit: unit, desc: desc})
	return desc, nil
}

// write writes the planned layout to the directory dir.
func (p *plan) write(ctx context.Context, repos *repository.Store, blobs storage.Opener, dir string, progress *task.Progress) (*ExportResult, error) {
	if err := os.MkdirAll(filepath.Join(dir, ocispec.ImageBlobsDir), 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	st, err := oci.NewStorage(dir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	res := &ExportResult{Tags: p.tags, Manifests: len(p.docs), Blobs: len(p.blobs), Skipped: p.skipped}
	var total int64
	for _, b := range p.blobs {
		total += b.desc.Size
	}
	for _, d := range p.docs {
		total += d.desc.Size
	}
	blobRep := progress.Report(CodeBlobs, "Exporting blobs", int64(len(p.blobs)))
	byteRep := progress.Report(CodeBytes, "Exporting bytes", total)
	docRep := progress.Report(CodeManifests, "Exporting manifests", int64(len(p.docs)))
	reports := []*task.Report{blobRep, byteRep, docRep}
	fail := func(err error) (*ExportResult, error) {
		state := task.StateFailed
		if ctx.Err() != nil {
			state = task.StateCanceled
		}
		for _, r := range reports {
			r.End(state)
		}
		return nil, err
	}
	for _, b := range p.blobs {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		rc, err := blobs.Open(ctx, b.desc.Digest)
		if errors.Is(err, errdef.ErrNotFound) {
			return fail(errdef.New(errdef.ErrConflict, "blob %s is not stored (it was recorded on demand and never pulled); sync with the immediate policy first", b.desc.Digest))
		}
		if err != nil {
			return fail(err)
		}
		err = st.Push(ctx, b.desc, &counting{r: contextReader{ctx, rc}, rep: byteRep})
		rc.Close()
		if err != nil && !errors.Is(err, oraserr.ErrAlreadyExists) {
			return fail(fmt.Errorf("export blob %s: %w", b.desc.Digest, err))
		}
		blobRep.Increment()
		res.Bytes += b.desc.Size
	}
	for _, d := range p.docs {
		if err := st.Push(ctx, d.desc, bytes.NewReader(d.unit.Raw)); err != nil && !errors.Is(err, oraserr.ErrAlreadyExists) {
			return fail(fmt.Errorf("export manifest %s: %w", d.desc.Digest, err))
		}
		byteRep.Add(d.desc.Size)
		docRep.Increment()
		res.Bytes += d.desc.Size
	}
	if err := writeIndex(dir, p.roots); err != nil {
		return fail(err)
	}
	for _, r := range reports {
		r.Complete()
	}
	return res, nil
}

// writeIndex writes oci-layout and index.json, and removes the ingest
// directory oras-go's storage leaves.
func writeIndex(dir string, roots []ocispec.Descriptor) error {
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if roots == nil {
		roots = []ocispec.Descriptor{}
	}
	index, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: roots})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), layout, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), index, 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, "ingest")); err != nil {
		return err
	}
	// oras-go makes blobs read-only; a layout is files a user owns.
	return filepath.WalkDir(filepath.Join(dir, ocispec.ImageBlobsDir), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(path, 0o644)
	})
}

// tarDir writes the files under dir to a tar archive at dst, with paths
// relative to dir, as skopeo's oci-archive and oras read them.
func tarDir(dir, dst string) (err error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// counting adds the bytes read to a progress report.
type counting struct {
	r   io.Reader
	rep *task.Report
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.rep.Add(int64(n))
	return n, err
}

// contextReader stops reading once ctx is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
