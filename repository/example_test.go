package repository_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/repository"
)

// Example shows the life of a repository: create it, record an image's
// content, make a version, read its summary, and list its tags.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mooring-example")
	defer os.RemoveAll(dir)
	d, err := repository.Open(ctx, filepath.Join(dir, "mooring.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	s := repository.NewStore(d)

	repo, err := s.CreateRepository(ctx, "foo", "mirror of busybox")
	if err != nil {
		log.Fatal(err)
	}

	// The blobs' bytes live in a storage.Driver; the repository records them.
	config := content.Blob{Digest: digest.FromString("config"), Size: 6, MediaType: content.MediaTypeOCIConfig}
	layer := content.Blob{Digest: digest.FromString("layer"), Size: 5, MediaType: content.MediaTypeOCILayerGzip}
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":6},"layers":[{"mediaType":%q,"digest":%q,"size":5}]}`,
		content.MediaTypeOCIManifest, config.MediaType, config.Digest, layer.MediaType, layer.Digest)
	doc, err := content.Parse(content.MediaTypeOCIManifest, []byte(raw))
	if err != nil {
		log.Fatal(err)
	}
	blobs, _ := s.PutBlobs(ctx, []content.Blob{config, layer})
	manifest, _ := s.PutDocument(ctx, doc)
	tag, _ := s.PutTag(ctx, "latest", manifest)

	v, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: []int64{blobs[0].ID, blobs[1].ID, manifest.ID, tag.ID}})
	if err != nil {
		log.Fatal(err)
	}
	sum, _ := s.Summary(ctx, repo.ID, v.Number)
	fmt.Println("version", v.Number)
	for _, t := range content.Types {
		if n := sum.Present[t]; n > 0 {
			fmt.Println(t, n)
		}
	}

	tags, _, _ := s.ListContent(ctx, repository.ContentFilter{
		Type: content.TypeManifestTag,
		In:   &repository.VersionRef{RepositoryID: repo.ID, Number: v.Number},
	})
	fmt.Println(tags[0].Name, "->", tags[0].Digest == manifest.Digest)
	// Output:
	// version 1
	// docker.manifest 1
	// docker.manifest-blob 2
	// docker.manifest-tag 1
	// latest -> true
}

// ExampleStore_DeleteVersion shows that deleting a version keeps every later
// version as it was.
func ExampleStore_DeleteVersion() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mooring-example")
	defer os.RemoveAll(dir)
	d, _ := repository.Open(ctx, filepath.Join(dir, "mooring.db"))
	defer d.Close()
	s := repository.NewStore(d)
	repo, _ := s.CreateRepository(ctx, "foo", "")

	units, _ := s.PutBlobs(ctx, []content.Blob{
		{Digest: digest.FromString("a"), Size: 1},
		{Digest: digest.FromString("b"), Size: 1},
	})
	s.NewVersion(ctx, repo.ID, repository.Change{Add: []int64{units[0].ID}}) // version 1: a
	s.NewVersion(ctx, repo.ID, repository.Change{Add: []int64{units[1].ID}}) // version 2: a, b
	if err := s.DeleteVersion(ctx, repo.ID, 1); err != nil {
		log.Fatal(err)
	}
	sum, _ := s.Summary(ctx, repo.ID, 2)
	fmt.Println("version 2 holds", sum.Present[content.TypeBlob], "blobs and now adds", sum.Added[content.TypeBlob])
	// Output:
	// version 2 holds 2 blobs and now adds 2
}

// ExampleStore_CopyTags promotes a tag from one repository to another:
// the copy brings the manifest and its blobs, and removing the tag again
// takes them away.
func ExampleStore_CopyTags() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mooring-example")
	defer os.RemoveAll(dir)
	d, _ := repository.Open(ctx, filepath.Join(dir, "mooring.db"))
	defer d.Close()
	s := repository.NewStore(d)

	dev, _ := s.CreateRepository(ctx, "dev", "")
	prod, _ := s.CreateRepository(ctx, "prod", "")
	config := content.Blob{Digest: digest.FromString("config"), Size: 6, MediaType: content.MediaTypeOCIConfig}
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":6},"layers":[]}`,
		content.MediaTypeOCIManifest, config.MediaType, config.Digest)
	doc, _ := content.Parse(content.MediaTypeOCIManifest, []byte(raw))
	blobs, _ := s.PutBlobs(ctx, []content.Blob{config})
	manifest, _ := s.PutDocument(ctx, doc)
	tag, _ := s.PutTag(ctx, "v1.0", manifest)
	s.NewVersion(ctx, dev.ID, repository.Change{Add: []int64{blobs[0].ID, manifest.ID, tag.ID}})

	v, err := s.CopyTags(ctx, prod.ID, repository.Source{RepositoryID: dev.ID}, []string{"v1.0"})
	if err != nil {
		log.Fatal(err)
	}
	sum, _ := s.Summary(ctx, prod.ID, v.Number)
	fmt.Println("prod version", v.Number, "holds", sum.Present)

	v, _ = s.RemoveContent(ctx, prod.ID, []repository.UnitRef{{Type: tag.Type, ID: tag.UUID}})
	sum, _ = s.Summary(ctx, prod.ID, v.Number)
	fmt.Println("prod version", v.Number, "holds", sum.Present)
	// Output:
	// prod version 1 holds map[docker.manifest:1 docker.manifest-blob:1 docker.manifest-tag:1]
	// prod version 2 holds map[]
}
