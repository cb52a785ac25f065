package regtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// Format selects the media types of a pushed image or index.
type Format int

const (
	// Docker is Docker image manifest v2 schema 2 and Docker manifest list.
	Docker Format = iota
	// OCI is OCI image manifest and OCI image index.
	OCI
)

// Media types used by the helpers; the content package has the same values,
// but regtest stays below every Mooring package so any of them can use it.
const (
	dockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList         = "application/vnd.docker.distribution.manifest.list.v2+json"
	dockerConfig       = "application/vnd.docker.container.image.v1+json"
	dockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	schema1Signed      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// ImageOpts describes a deterministic test image: the same options always
// give the same bytes, hence the same digests.
type ImageOpts struct {
	// Layers is the number of layers; 0 means 1.
	Layers int
	// LayerSize is the size of each layer in bytes; 0 means 1 KiB.
	LayerSize int64
	// Seed makes the layers and config distinct: images pushed with the
	// same seed share their layers.
	Seed string
	// Format selects Docker schema 2 (the default) or OCI media types.
	Format Format
	// Platform is recorded in the config and in the returned descriptor;
	// nil means linux/amd64.
	Platform *ocispec.Platform
	// ForeignLayers adds that many foreign (non-distributable) layers after
	// the others. They are recorded in the manifest with a URL and never
	// pushed; CNCF distribution rejects them unless configured to accept
	// their URLs, so use StartInProcess.
	ForeignLayers int
	// Base, when set, puts the layers of another deterministic image (its
	// Seed, Layers and LayerSize) under this image's own, so that images
	// with the same Base share those layers as images built FROM one base
	// do.
	Base *ImageOpts
}

func (o ImageOpts) norm() ImageOpts {
	if o.Layers <= 0 {
		o.Layers = 1
	}
	if o.LayerSize <= 0 {
		o.LayerSize = 1 << 10
	}
	if o.Platform == nil {
		o.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	return o
}

// LayerReader returns the bytes of layer i of an image with the given seed:
// size pseudo-random bytes, generated as they are read, so that a layer of
// any size costs no memory.
func LayerReader(seed string, i int, size int64) io.Reader {
	key := sha256.Sum256(fmt.Appendf(nil, "regtest layer %q %d", seed, i))
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// LayerDescriptor returns the descriptor of the layer LayerReader gives.
func LayerDescriptor(seed string, i int, size int64, mediaType string) ocispec.Descriptor {
	d := digest.Canonical.Digester()
	io.Copy(d.Hash(), LayerReader(seed, i, size))
	return ocispec.Descriptor{MediaType: mediaType, Digest: d.Digest(), Size: size}
}

// Repository returns an oras-go repository client for repo on host, over
// plain HTTP, without credentials.
func Repository(host, repo string) (*remote.Repository, error) {
	r, err := remote.NewRepository(host + "/" + repo)
	if err != nil {
		return nil, err
	}
	r.PlainHTTP = true
	r.Client = &auth.Client{Client: &http.Client{}, Cache: auth.NewCache()}
	return r, nil
}

// PushImage pushes a deterministic image (its layers, config and manifest)
// to repo on host over plain HTTP and tags it with tag (when tag is not
// empty). It returns the manifest's descriptor, with the platform set so it
// can be passed to PushIndex. Blobs the registry already has are not pushed
// again.
func PushImage(ctx context.Context, host, repo, tag string, opts ImageOpts) (ocispec.Descriptor, error) {
	r, err := Repository(host, repo)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return PushImageTo(ctx, r, tag, opts)
}

// PushImageTo is PushImage through a repository client of the caller's,
// such as one with credentials.
func PushImageTo(ctx context.Context, r *remote.Repository, tag string, opts ImageOpts) (ocispec.Descriptor, error) {
	repo := r.Reference.Repository
	opts = opts.norm()
	manifestType, configType, layerType := dockerManifest, dockerConfig, dockerLayer
	if opts.Format == OCI {
		manifestType, configType, layerType = ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip
	}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	sources := []ImageOpts{opts}
	if opts.Base != nil {
		sources = []ImageOpts{opts.Base.norm(), opts}
	}
	for _, src := range sources {
		for i := range src.Layers {
			desc := LayerDescriptor(src.Seed, i, src.LayerSize, layerType)
			if err := pushBlob(ctx, r, desc, func() io.Reader { return LayerReader(src.Seed, i, src.LayerSize) }); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("push layer %d of %s:%s: %w", i, repo, tag, err)
			}
			layers = append(layers, desc)
			diffIDs = append(diffIDs, desc.Digest)
		}
	}
	for i := range opts.ForeignLayers {
		foreignType := dockerForeignLayer
		if opts.Format == OCI {
			foreignType = ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // that is the point
		}
		desc := LayerDescriptor(opts.Seed+"/foreign", i, opts.LayerSize, foreignType)
		desc.URLs = []string{fmt.Sprintf("https://example.com/foreign/%s", desc.Digest.Encoded())}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, desc.Digest)
	}
	config, err := json.Marshal(map[string]any{
		"architecture": opts.Platform.Architecture,
		"os":           opts.Platform.OS,
		"variant":      opts.Platform.Variant,
		"config":       map[string]any{"Labels": map[string]string{"regtest.seed": opts.Seed}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	configDesc := ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(config), Size: int64(len(config))}
	if err := pushBlob(ctx, r, configDesc, func() io.Reader { return bytes.NewReader(config) }); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push config of %s:%s: %w", repo, tag, err)
	}
	manifest, err := json.MarshalIndent(map[string]any{
		"schemaVersion": 2,
		"mediaType":     manifestType,
		"config":        configDesc,
		"layers":        layers,
	}, "", "   ")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: manifestType, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	if err := pushManifest(ctx, r, desc, manifest, tag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push manifest %s:%s: %w", repo, tag, err)
	}
	desc.Platform = opts.Platform
	return desc, nil
}

// PushIndex pushes a Docker manifest list or an OCI image index of children
// (already pushed to the same repository, with their platforms) and tags it.
// It returns the list's descriptor.
func PushIndex(ctx context.Context, host, repo, tag string, format Format, children ...ocispec.Descriptor) (ocispec.Descriptor, error) {
	r, err := Repository(host, repo)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return PushIndexTo(ctx, r, tag, format, children...)
}

// PushIndexTo is PushIndex through a repository client of the caller's.
func PushIndexTo(ctx context.Context, r *remote.Repository, tag string, format Format, children ...ocispec.Descriptor) (ocispec.Descriptor, error) {
	repo := r.Reference.Repository
	mt := dockerList
	if format == OCI {
		mt = ocispec.MediaTypeImageIndex
	}
	raw, err := json.MarshalIndent(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mt,
		"manifests":     children,
	}, "", "   ")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := pushManifest(ctx, r, desc, raw, tag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push index %s:%s: %w", repo, tag, err)
	}
	return desc, nil
}

// PushSchema1 pushes the layers of a deterministic image and a signed Docker
// v2 schema 1 manifest naming them, tagged tag. It returns the manifest's
// descriptor; its digest is that of the JWS payload (the manifest without
// its signatures), as registries report it. CNCF distribution 2.8 refuses
// schema 1 pushes by default, so use StartInProcess.
func PushSchema1(ctx context.Context, host, repo, tag string, opts ImageOpts) (ocispec.Descriptor, error) {
	r, err := Repository(host, repo)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	opts = opts.norm()
	var fsLayers, history []string
	for i := range opts.Layers {
		desc := LayerDescriptor(opts.Seed, i, opts.LayerSize, dockerLayer)
		if err := pushBlob(ctx, r, desc, func() io.Reader { return LayerReader(opts.Seed, i, opts.LayerSize) }); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push layer %d of %s:%s: %w", i, repo, tag, err)
		}
		// schema 1 lists the top-most layer first.
		fsLayers = append([]string{fmt.Sprintf(`      {
         "blobSum": %q
      }`, desc.Digest)}, fsLayers...)
		v1, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("%064x", sha256.Sum256(fmt.Appendf(nil, "%s/%d", opts.Seed, i)))})
		history = append([]string{fmt.Sprintf(`      {
         "v1Compatibility": %q
      }`, v1)}, history...)
	}
	payload := fmt.Sprintf(`{
   "schemaVersion": 1,
   "name": %q,
   "tag": %q,
   "architecture": %q,
   "fsLayers": [
%s
   ],
   "history": [
%s
   ]
}`, repo, tag, opts.Platform.Architecture, strings.Join(fsLayers, ",\n"), strings.Join(history, ",\n"))
	raw, err := signSchema1(payload)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: schema1Signed, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := pushManifest(ctx, r, desc, raw, tag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push schema 1 manifest %s:%s: %w", repo, tag, err)
	}
	desc.Digest = digest.FromString(payload)
	return desc, nil
}

// signSchema1 signs payload as libtrust's pretty JWS did: the signatures are
// spliced in before the closing "\n}", and the protected header records
// where to cut (formatLength) and what to put back (formatTail). The
// signature is real but made with a throwaway key, and Go's ECDSA is
// randomised, so the signed bytes differ from push to push; the payload, and
// so the digest registries report, does not.
func signSchema1(payload string) ([]byte, error) {
	cut := strings.LastIndex(payload, "\n}")
	tail := payload[cut:]
	b64 := base64.RawURLEncoding.EncodeToString
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, err
	}
	prot := b64(fmt.Appendf(nil, `{"formatLength":%d,"formatTail":%q,"time":"2016-02-03T17:12:52Z"}`, cut, b64([]byte(tail))))
	h := sha256.Sum256([]byte(prot + "." + b64([]byte(payload))))
	sigR, sigS, err := ecdsa.Sign(crand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 64)
	sigR.FillBytes(sig[:32])
	sigS.FillBytes(sig[32:])
	x, y := key.X.FillBytes(make([]byte, 32)), key.Y.FillBytes(make([]byte, 32))
	sigs := fmt.Sprintf(`      {
         "header": {
            "jwk": {
               "crv": "P-256",
               "kid": "regtest",
               "kty": "EC",
               "x": %q,
               "y": %q
            },
            "alg": "ES256"
         },
         "signature": %q,
         "protected": %q
      }`, b64(x), b64(y), b64(sig), prot)
	return []byte(payload[:cut] + ",\n   \"signatures\": [\n" + sigs + "\n   ]" + tail), nil
}

func pushBlob(ctx context.Context, r *remote.Repository, desc ocispec.Descriptor, body func() io.Reader) error {
	ok, err := r.Blobs().Exists(ctx, desc)
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return err
	}
	if ok {
		return nil
	}
	return r.Blobs().Push(ctx, desc, body())
}

func pushManifest(ctx context.Context, r *remote.Repository, desc ocispec.Descriptor, raw []byte, tag string) error {
	if tag == "" {
		return r.Manifests().Push(ctx, desc, bytes.NewReader(raw))
	}
	return r.Manifests().PushReference(ctx, desc, bytes.NewReader(raw), tag)
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
