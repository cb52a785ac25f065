package distribution

import (
	"context"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/repository"
)

// Referrers lists the manifests and lists in the version v serves whose
// subject is the digest (distribution spec "Listing Referrers"), as
// descriptors with their artifact type and annotations; with artifactType
// not empty, only those of that type. Nothing refers to an unknown
// subject: the list is then empty, not an error.
func (r *Registry) Referrers(ctx context.Context, v *View, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	descs := []ocispec.Descriptor{}
	for u, err := range r.repos.Contents(ctx, repository.ContentFilter{In: v.ref(), Subject: subject}) {
		if err != nil {
			return nil, err
		}
		if u.Type != content.TypeManifest && u.Type != content.TypeManifestList {
			continue
		}
		c, err := r.repos.ContentByID(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		desc := referrer(c)
		if artifactType == "" || desc.ArtifactType == artifactType {
			descs = append(descs, desc)
		}
	}
	return descs, nil
}

// referrer describes manifest or list c for a referrers list: its artifact
// type is its own, else its config's media type (image-spec "Guidelines
// for Artifact Usage").
func referrer(c *repository.Content) ocispec.Descriptor {
	desc := ocispec.Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: int64(len(c.Raw)), ArtifactType: c.ArtifactType}
	doc, err := content.ParseDigest(c.MediaType, c.Raw, c.Digest)
	if err != nil {
		return desc
	}
	switch m := doc.(type) {
	case *content.Manifest:
		desc.Annotations = m.Annotations
		if desc.ArtifactType == "" && m.Config != nil {
			desc.ArtifactType = m.Config.MediaType
		}
	case *content.ManifestList:
		desc.Annotations = m.Annotations
	}
	return desc
}
