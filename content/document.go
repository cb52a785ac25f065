package content

import (
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Descriptor describes the manifest as a registry serves it: its media type,
// digest and size in bytes (for signed schema 1, the size of the whole
// document, signatures included, though the digest excludes them).
func (m *Manifest) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       m.Digest,
		Size:         int64(len(m.Raw)),
		ArtifactType: m.ArtifactType,
	}
}

// References lists the blobs the manifest needs: its config, if any, then its
// layers in order. The subject is not included: a referrer does not own it,
// and it need not exist.
func (m *Manifest) References() []ocispec.Descriptor {
	refs := make([]ocispec.Descriptor, 0, len(m.Layers)+1)
	if m.Config != nil {
		refs = append(refs, m.Config.descriptor())
	}
	for _, l := range m.Layers {
		refs = append(refs, l.descriptor())
	}
	return refs
}

// ContentType returns TypeManifest.
func (m *Manifest) ContentType() Type { return TypeManifest }

// Descriptor describes the manifest list as a registry serves it: its media
// type, digest and size in bytes.
func (l *ManifestList) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    l.MediaType,
		Digest:       l.Digest,
		Size:         int64(len(l.Raw)),
		ArtifactType: l.ArtifactType,
	}
}

// References lists the manifests (or nested indexes) the list points to, in
// order, with their platforms. The subject is not included.
func (l *ManifestList) References() []ocispec.Descriptor {
	return slices.Clone(l.Manifests)
}

// ContentType returns TypeManifestList.
func (l *ManifestList) ContentType() Type { return TypeManifestList }

// descriptor converts a blob to the descriptor a manifest would hold for it.
func (b Blob) descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: b.MediaType,
		Digest:    b.Digest,
		Size:      b.Size,
		URLs:      slices.Clone(b.URLs),
	}
}
