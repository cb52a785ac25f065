package push_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution/push"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// TestListPushRacesRemoval pushes an image and a manifest list naming it
// over and over while other clients remove both, recursively, as fast as
// they can. A list push that finds its child a moment before the child is
// removed must not add the child back without the config and layers the
// removal took: afterwards every version holds, for each manifest, its
// blobs, for each list, its children and, for each tag, its manifest.
func TestListPushRacesRemoval(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc, repos := newService(t, db)
		const name, rounds = "race/app", 40
		config, layer := []byte(`{"race":"config"}`), []byte("race layer")
		raw := manifestJSON(config, layer)
		child := digest.FromBytes(raw)
		list := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`,
			ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, child, len(raw))
		pushAll := func() error {
			for _, b := range [][]byte{config, layer} {
				if _, err := svc.PutBlob(ctx, name, digest.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
					return err
				}
			}
			if _, err := svc.PutManifest(ctx, name, push.Manifest{MediaType: ocispec.MediaTypeImageManifest, Raw: raw, Reference: "m"}); err != nil {
				return err
			}
			_, err := svc.PutManifest(ctx, name, push.Manifest{MediaType: ocispec.MediaTypeImageIndex, Raw: list, Reference: "l"})
			return err
		}
		if err := pushAll(); err != nil {
			t.Fatal(err)
		}
		repo, err := repos.RepositoryByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var refs []repository.UnitRef
		for _, d := range []digest.Digest{child, digest.FromBytes(list)} {
			for _, typ := range []content.Type{content.TypeManifest, content.TypeManifestList} {
				if c, err := repos.ContentByDigest(ctx, typ, d); err == nil {
					refs = append(refs, repository.UnitRef{ID: c.UUID})
				}
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8*rounds)
		var refused, removed sync.Map
		for w := range 4 {
			wg.Go(func() {
				for range rounds {
					err := pushAll()
					if errors.Is(err, errdef.ErrManifestBlobUnknown) {
						refused.Store(w, true)
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("pusher %d: %w", w, err)
						return
					}
				}
			})
			wg.Go(func() {
				for range rounds {
					v, err := repos.RemoveContent(ctx, repo.ID, refs)
					var fe *errdef.FieldError
					if err != nil && !errors.As(err, &fe) {
						errs <- fmt.Errorf("remover %d: %w", w, err)
						return
					}
					if v != nil {
						removed.Store(w, true)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		n := 0
		removed.Range(func(any, any) bool { n++; return true })
		if n == 0 {
			t.Fatal("no removal made a version: the test proved nothing")
		}
		checkVersions(ctx, t, repos, repo.ID)
	})
}

// checkVersions fails t for each version of repository repoID holding a
// manifest without one of its blobs, a list without one of its children
// or a tag without its manifest.
func checkVersions(ctx context.Context, t *testing.T, repos *repository.Store, repoID string) {
	t.Helper()
	versions, _, err := repos.ListVersions(ctx, repoID, repository.Page{Limit: repository.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		ref := repository.VersionRef{RepositoryID: repoID, Number: v.Number}
		ids := map[int64]bool{}
		var docs []repository.Content
		for c, err := range repos.Contents(ctx, repository.ContentFilter{In: &ref}) {
			if err != nil {
				t.Fatal(err)
			}
			ids[c.ID] = true
			if c.Type == content.TypeManifest || c.Type == content.TypeManifestList {
				docs = append(docs, c)
			}
		}
		for c, err := range repos.Contents(ctx, repository.ContentFilter{In: &ref}) {
			if err != nil {
				t.Fatal(err)
			}
			if c.Type.IsTag() && !ids[c.TaggedID] {
				t.Errorf("version %d: tag %q names %s, which the version lacks", v.Number, c.Name, c.Digest)
			}
		}
		for _, d := range docs {
			refs, err := repos.Refs(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refs {
				types := []content.Type{content.TypeBlob}
				if r.Role == repository.RoleManifest {
					types = []content.Type{content.TypeManifest, content.TypeManifestList}
				}
				found := false
				for _, typ := range types {
					got, err := repos.Present(ctx, ref, typ, []digest.Digest{r.ChildDigest})
					if err != nil {
						t.Fatal(err)
					}
					found = found || got[r.ChildDigest]
				}
				if !found {
					t.Errorf("version %d: %s %s references %s %s, which the version lacks", v.Number, d.Type, d.Digest, r.Role, r.ChildDigest)
				}
			}
		}
	}
}
