// Package content defines the content units of a container repository —
// blobs, manifests, manifest lists and tags — and parses and validates the
// documents that describe them.
//
// The package knows nothing of databases, HTTP or storage: it is the shared
// vocabulary every other Mooring package speaks.
package content

import (

	// Register the hash functions of the digest algorithms registries use.
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Type names a kind of content unit. The values are Pulp's names, so that
// content summaries read the same as pulp_docker's.
type Type string

// The content types of a container repository.
const (
	TypeBlob            Type = "docker.manifest-blob"
	TypeManifest        Type = "docker.manifest"
	TypeManifestList    Type = "docker.manifest-list"
	TypeManifestTag     Type = "docker.manifest-tag"
	TypeManifestListTag Type = "docker.manifest-list-tag"
)

// Types lists every content type in a stable order.
var Types = []Type{TypeManifest, TypeManifestList, TypeBlob, TypeManifestTag, TypeManifestListTag}

// Valid reports whether t is one of the known content types.
func (t Type) Valid() bool {
	for _, k := range Types {
		if t == k {
			return true
		}
	}
	return false
}

// IsTag reports whether t is one of the two tag types.
func (t Type) IsTag() bool { return t == TypeManifestTag || t == TypeManifestListTag }

// Media types of the documents and blobs Mooring handles.
const (
	MediaTypeDockerManifest        = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1Signed   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeDockerSchema1         = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerConfig          = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer           = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer    = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeOCIManifest           = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex              = ocispec.MediaTypeImageIndex
	MediaTypeOCIConfig             = ocispec.MediaTypeImageConfig
	MediaTypeOCIEmpty              = ocispec.MediaTypeEmptyJSON
	MediaTypeOCILayer              = ocispec.MediaTypeImageLayer
	MediaTypeOCILayerGzip          = ocispec.MediaTypeImageLayerGzip
	MediaTypeOCILayerZstd          = ocispec.MediaTypeImageLayerZstd
	MediaTypeOCINondistributable   = ocispec.MediaTypeImageLayerNonDistributable     //nolint:staticcheck // still seen in the wild
	MediaTypeOCINondistributableGz = ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // still seen in the wild
)

// ManifestMediaTypes lists, most preferred first, every manifest and
// manifest-list media type Mooring accepts; it is what a client sends in
// Accept when it fetches a manifest.
var ManifestMediaTypes = []string{
	MediaTypeOCIIndex,
	MediaTypeDockerManifestList,
	MediaTypeOCIManifest,
	MediaTypeDockerManifest,
	MediaTypeDockerSchema1Signed,
	MediaTypeDockerSchema1,
}

// MaxManifestSize is the largest manifest or manifest list accepted, in bytes
// (the limit CNCF distribution and most registries apply).
const MaxManifestSize = 4 << 20

// Errors returned by this package. Parse errors wrap one of them, so callers
// test with errors.Is.
var (
	// ErrInvalidManifest: the document is not well-formed for its media
	// type (a case of errdef.ErrInvalid).
	ErrInvalidManifest = errdef.New(errdef.ErrInvalid, "invalid manifest")
	// ErrUnsupportedMediaType: the media type is not one Mooring handles
	// (errdef.ErrInvalid: it is the input that is wrong).
	ErrUnsupportedMediaType = errdef.New(errdef.ErrInvalid, "unsupported media type")
	// ErrTooLarge: the document is larger than MaxManifestSize
	// (errdef.ErrTooLarge).
	ErrTooLarge = errdef.New(errdef.ErrTooLarge, "manifest too large")
	// ErrDigestMismatch: the bytes do not hash to the expected digest
	// (errdef.ErrInvalid).
	ErrDigestMismatch = errdef.New(errdef.ErrInvalid, "digest mismatch")
	// ErrInvalidName: a repository or tag name breaks the distribution-spec
	// grammar (errdef.ErrInvalid).
	ErrInvalidName = errdef.New(errdef.ErrInvalid, "invalid name")
)

// Blob is a config or layer blob. A foreign (non-distributable) layer is
// recorded with its URLs but never downloaded.
type Blob struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"media_type,omitempty"`
	Foreign   bool          `json:"foreign,omitempty"`
	URLs      []string      `json:"urls,omitempty"`
}

// Manifest is an image manifest: Docker v2 schema 2, OCI image manifest, or
// Docker v2 schema 1 (signed or not). Raw holds the exact bytes as received;
// Digest is the digest a registry serves for them (for signed schema 1, the
// digest of the payload without signatures).
type Manifest struct {
	Digest        digest.Digest
	MediaType     string
	Raw           []byte
	SchemaVersion int
	// Config is the config blob; nil for schema 1, which has none.
	Config *Blob
	// Layers in manifest order. For schema 1 they are the fsLayers,
	// deduplicated, in the order listed (top-most layer first, the reverse
	// of schema 2), with Size SizeUnknown and MediaType MediaTypeDockerLayer.
	Layers       []Blob
	ArtifactType string
	Subject      *ocispec.Descriptor
	Annotations  map[string]string
	// Name, Tag and Architecture are the repository name, tag and
	// architecture a Docker schema 1 manifest records; empty otherwise.
	Name         string
	Tag          string
	Architecture string
}

// ManifestList is a Docker manifest list or an OCI image index. Each entry of
// Manifests keeps its platform.
type ManifestList struct {
	Digest        digest.Digest
	MediaType     string
	Raw           []byte
	SchemaVersion int
	Manifests     []ocispec.Descriptor
	ArtifactType  string
	Subject       *ocispec.Descriptor
	Annotations   map[string]string
}

// Tag names one manifest or one manifest list.
type Tag struct {
	Name   string
	Digest digest.Digest
}

// Document is a parsed manifest or manifest list.
type Document interface {
	// Descriptor describes the document itself: media type, digest, size.
	Descriptor() ocispec.Descriptor
	// References lists what the document points to: config and layers of a
	// manifest, child manifests of a list.
	References() []ocispec.Descriptor
	// ContentType is TypeManifest or TypeManifestList.
	ContentType() Type
}
