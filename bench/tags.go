package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// ManyTags is an upstream repository of many tags in a docker-registry
// (CNCF distribution) with filesystem storage. Pushing tens of thousands
// of manifests through the registry API takes minutes; a tag is only a few
// small files in the registry's storage, so ManyTags pushes one image
// through the API (its config and layers) and writes the manifests and
// tags straight into the storage directory, in the layout the registry
// reads (docker/registry/v2/…). The registry keeps no cache of tags or
// manifests in the configuration regtest gives it, so it serves what is
// written while it runs.
type ManyTags struct {
	// Storage is the registry's storage root directory (its
	// rootdirectory); regtest.RunDistribution(root) uses root/storage.
	Storage string
	// Repo is the repository name, such as "bench/app".
	Repo string

	config ocispec.Descriptor
	layers []ocispec.Descriptor
}

// TagName is the name of tag i of a ManyTags data set, zero-padded so that
// lexical order is numeric order.
func TagName(i int) string { return fmt.Sprintf("t%06d", i) }

// LoadManyTags pushes a small base image (an OCI config and two 1 KiB
// layers) to repo on host through the API, then writes manifests distinct
// OCI manifests of it (they differ by an annotation, and share the config
// and layers) and tags tags naming them in turn (tag i names manifest
// i % manifests) into storage. It returns the tag names, sorted.
func LoadManyTags(ctx context.Context, host, storage, repo string, tags, manifests int) (*ManyTags, []string, error) {
	if manifests <= 0 || manifests > tags {
		manifests = tags
	}
	base, err := regtest.PushImage(ctx, host, repo, "", regtest.ImageOpts{Layers: 2, Seed: "many-tags", Format: regtest.OCI})
	if err != nil {
		return nil, nil, err
	}
	r, err := regtest.Repository(host, repo)
	if err != nil {
		return nil, nil, err
	}
	// Read back what was pushed: the config and layer descriptors.
	_, rc, err := r.FetchReference(ctx, base.Digest.String())
	if err != nil {
		return nil, nil, err
	}
	var m ocispec.Manifest
	err = json.NewDecoder(rc).Decode(&m)
	rc.Close()
	if err != nil {
		return nil, nil, err
	}
	mt := &ManyTags{Storage: storage, Repo: repo, config: m.Config, layers: m.Layers}
	digests := make([]digest.Digest, manifests)
	if err := parallel(manifests, func(i int) (err error) {
		digests[i], err = mt.writeManifest(fmt.Sprintf("image %d", i))
		return err
	}); err != nil {
		return nil, nil, err
	}
	names := make([]string, tags)
	err = parallel(tags, func(i int) error {
		names[i] = TagName(i)
		return mt.writeTag(names[i], digests[i%manifests])
	})
	return mt, names, err
}

// Move points each of tags at a manifest of its own, new in generation
// gen (a tag moved twice needs a new gen each time), as a rebuild and
// push of those tags would.
func (mt *ManyTags) Move(tags []string, gen int) error {
	return parallel(len(tags), func(i int) error {
		d, err := mt.writeManifest(fmt.Sprintf("tag %s generation %d", tags[i], gen))
		if err != nil {
			return err
		}
		return mt.writeTag(tags[i], d)
	})
}

// writeManifest writes a manifest of the base image annotated with note
// as a blob and a revision of the repository, and returns its digest.
func (mt *ManyTags) writeManifest(note string) (digest.Digest, error) {
	raw, err := json.Marshal(ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      mt.config,
		Layers:      mt.layers,
		Annotations: map[string]string{"dev.mooring.bench": note},
	})
	if err != nil {
		return "", err
	}
	d := digest.FromBytes(raw)
	hex := d.Encoded()
	if err := mt.write(raw, "blobs", "sha256", hex[:2], hex, "data"); err != nil {
		return "", err
	}
	return d, mt.write([]byte(d), "repositories", mt.Repo, "_manifests", "revisions", "sha256", hex, "link")
}

// writeTag points tag at manifest d: its current link and its index entry.
func (mt *ManyTags) writeTag(tag string, d digest.Digest) error {
	if err := mt.write([]byte(d), "repositories", mt.Repo, "_manifests", "tags", tag, "index", "sha256", d.Encoded(), "link"); err != nil {
		return err
	}
	return mt.write([]byte(d), "repositories", mt.Repo, "_manifests", "tags", tag, "current", "link")
}

// write writes data to the file named by the path elements under the
// registry's docker/registry/v2 directory, replacing it atomically.
func (mt *ManyTags) write(data []byte, elem ...string) error {
	name := filepath.Join(append([]string{mt.Storage, "docker", "registry", "v2"}, elem...)...)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// parallel runs fn(0) … fn(n-1), eight at a time.
func parallel(n int, fn func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error { return fn(i) })
	}
	return g.Wait()
}
