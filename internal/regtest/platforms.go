package regtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// MultiPlatform is an OCI index as BuildKit pushes a multi-platform build
// with attestations: an image manifest per platform, each followed by its
// attestation manifest (platform unknown/unknown, annotated
// vnd.docker.reference.type: attestation-manifest and
// vnd.docker.reference.digest: <the image's digest>).
type MultiPlatform struct {
	// Index is the index's descriptor and Raw its exact bytes.
	Index ocispec.Descriptor
	Raw   []byte
	// Images are the image manifests' descriptors, in platform order, with
	// their platforms; Attestations the attestation manifests', the i-th
	// describing Images[i].
	Images, Attestations []ocispec.Descriptor
}

// PushMultiPlatform pushes, to repo on host, an image for each platform
// (a real gzipped tar layer, so that podman and skopeo can unpack it, and
// a config naming the platform), an attestation manifest for each (an
// in-toto statement layer) and an OCI index of them all, tagged tag. The
// same arguments always give the same digests.
func PushMultiPlatform(ctx context.Context, host, repo, tag, seed string, platforms ...ocispec.Platform) (*MultiPlatform, error) {
	r, err := Repository(host, repo)
	if err != nil {
		return nil, err
	}
	return PushMultiPlatformTo(ctx, r, tag, seed, platforms...)
}

// PushMultiPlatformTo is PushMultiPlatform through a repository client of
// the caller's, such as one with credentials.
func PushMultiPlatformTo(ctx context.Context, r *remote.Repository, tag, seed string, platforms ...ocispec.Platform) (*MultiPlatform, error) {
	var err error
	out := &MultiPlatform{}
	var entries []ocispec.Descriptor
	for _, p := range platforms {
		img, err := pushPlatformImage(ctx, r, seed, p)
		if err != nil {
			return nil, err
		}
		att, err := pushAttestation(ctx, r, seed, img)
		if err != nil {
			return nil, err
		}
		out.Images = append(out.Images, img)
		out.Attestations = append(out.Attestations, att)
		entries = append(entries, img, att)
	}
	out.Raw, err = json.MarshalIndent(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageIndex,
		"manifests":     entries,
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	out.Index = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(out.Raw), Size: int64(len(out.Raw))}
	if err := pushManifest(ctx, r, out.Index, out.Raw, tag); err != nil {
		return nil, fmt.Errorf("push index %s:%s: %w", r.Reference.Repository, tag, err)
	}
	return out, nil
}

// platformName is "os/arch[/variant]".
func platformName(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// pushPlatformImage pushes an OCI image for platform p whose one layer is
// a gzipped tar holding /platform.txt, and returns its descriptor with p.
func pushPlatformImage(ctx context.Context, r *remote.Repository, seed string, p ocispec.Platform) (ocispec.Descriptor, error) {
	name := platformName(p)
	tarred, gz := tarGz("platform.txt", []byte(seed+" "+name+"\n"))
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz), Size: int64(len(gz))}
	config, err := json.Marshal(map[string]any{
		"architecture": p.Architecture, "os": p.OS, "variant": p.Variant,
		"config": map[string]any{"Cmd": []string{"/platform.txt"}, "Labels": map[string]string{"regtest.seed": seed}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromBytes(tarred)}},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	configDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	desc, err := pushDocument(ctx, r, configDesc, config, layer, gz)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s image: %w", name, err)
	}
	desc.Platform = &p
	return desc, nil
}

// pushAttestation pushes a BuildKit-style attestation manifest of image
// and returns its descriptor as BuildKit puts it in an index.
func pushAttestation(ctx context.Context, r *remote.Repository, seed string, image ocispec.Descriptor) (ocispec.Descriptor, error) {
	statement, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": "https://spdx.dev/Document",
		"subject":       []map[string]any{{"name": seed, "digest": map[string]string{"sha256": image.Digest.Encoded()}}},
		"predicate":     map[string]any{"spdxVersion": "SPDX-2.3", "name": seed},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	layer := ocispec.Descriptor{MediaType: "application/vnd.in-toto+json", Digest: digest.FromBytes(statement), Size: int64(len(statement)),
		Annotations: map[string]string{"in-toto.io/predicate-type": "https://spdx.dev/Document"}}
	config, err := json.Marshal(map[string]any{"architecture": "unknown", "os": "unknown", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{layer.Digest}}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	configDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	desc, err := pushDocument(ctx, r, configDesc, config, layer, statement)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push attestation of %s: %w", image.Digest, err)
	}
	desc.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	desc.Annotations = map[string]string{
		"vnd.docker.reference.type":   "attestation-manifest",
		"vnd.docker.reference.digest": image.Digest.String(),
	}
	return desc, nil
}

// pushDocument pushes a config, one layer and the OCI manifest naming
// them, and returns the manifest's descriptor.
func pushDocument(ctx context.Context, r *remote.Repository, configDesc ocispec.Descriptor, config []byte, layer ocispec.Descriptor, body []byte) (ocispec.Descriptor, error) {
	for _, b := range []struct {
		d   ocispec.Descriptor
		raw []byte
	}{{layer, body}, {configDesc, config}} {
		if err := pushBlob(ctx, r, b.d, func() io.Reader { return bytes.NewReader(b.raw) }); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	manifest, err := json.MarshalIndent(map[string]any{
		"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
		"config": configDesc, "layers": []ocispec.Descriptor{layer},
	}, "", "  ")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	return desc, pushManifest(ctx, r, desc, manifest, "")
}

// tarGz returns a tar archive holding one file, and the archive gzipped.
func tarGz(name string, body []byte) (tarred, gz []byte) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)})
	tw.Write(body)
	tw.Close()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	return tb.Bytes(), zb.Bytes()
}
