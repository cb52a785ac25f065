package repository_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// putList stores a manifest list of the given images.
func putList(t testing.TB, s *repository.Store, children ...fixture) *repository.Content {
	t.Helper()
	var entries []string
	for i, c := range children {
		entries = append(entries, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"arch%d","os":"linux"}}`,
			content.MediaTypeOCIManifest, c.manifest.Digest, c.manifest.Size, i))
	}
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, content.MediaTypeOCIIndex, strings.Join(entries, ","))
	doc, err := content.Parse(content.MediaTypeOCIIndex, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.PutDocument(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ref(c *repository.Content) repository.UnitRef {
	return repository.UnitRef{Type: c.Type, ID: c.UUID}
}

// holds returns the digests (tags: name=digest) version n of repo holds,
// sorted, for comparing what a user would see.
func holds(t testing.TB, s *repository.Store, repoID string, n int) []string {
	t.Helper()
	var out []string
	for c, err := range s.Contents(context.Background(), repository.ContentFilter{In: &repository.VersionRef{RepositoryID: repoID, Number: n}}) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != "" {
			out = append(out, c.Name+"="+c.Digest.String()[:15])
		} else {
			out = append(out, string(c.Type[7:])+":"+c.Digest.String()[:15])
		}
	}
	slices.Sort(out)
	return out
}

func latestOf(t testing.TB, s *repository.Store, repoID string) int {
	t.Helper()
	r, err := s.Repository(context.Background(), repoID)
	if err != nil {
		t.Fatal(err)
	}
	return r.LatestVersion
}

// closure lists what holds would show for the given units and what they
// reference.
func closure(units ...any) []string {
	var out []string
	add := func(c *repository.Content) {
		if c.Name != "" {
			out = append(out, c.Name+"="+c.Digest.String()[:15])
		} else {
			out = append(out, string(c.Type[7:])+":"+c.Digest.String()[:15])
		}
	}
	for _, u := range units {
		switch u := u.(type) {
		case fixture:
			add(u.manifest)
			for i := range u.blobs {
				add(&u.blobs[i])
			}
		case *repository.Content:
			add(u)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *errdef.FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("err = %v, want a field error about %q", err, field)
	}
}

func TestActionsAreRecursive(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		src, _ := s.CreateRepository(ctx, "src", "")
		dst, _ := s.CreateRepository(ctx, "dst", "")
		a, b := putImage(t, s, "a"), putImage(t, s, "b")
		list := putList(t, s, a, b)
		tagA, _ := s.PutTag(ctx, "a", a.manifest)
		tagL, _ := s.PutTag(ctx, "l", list)
		if _, err := s.NewVersion(ctx, src.ID, repository.Change{Add: slices.Concat(a.ids(), b.ids(), []int64{list.ID, tagA.ID, tagL.ID})}); err != nil {
			t.Fatal(err)
		}

		// Adding a tag brings the list, its manifests and their blobs.
		v, err := s.AddContent(ctx, dst.ID, []repository.UnitRef{ref(tagL)})
		if err != nil || v == nil {
			t.Fatalf("add tag l: %v, %v", v, err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(tagL, list, a, b); !slices.Equal(got, want) {
			t.Fatalf("after adding tag l: %v, want %v", got, want)
		}

		// Tagging; the same tag again changes nothing.
		if v, err = s.TagManifest(ctx, dst.ID, "x", a.manifest.Digest); err != nil || v == nil {
			t.Fatalf("tag x: %v, %v", v, err)
		}
		if v, err := s.TagManifest(ctx, dst.ID, "x", a.manifest.Digest); err != nil || v != nil {
			t.Fatalf("tag x again: %v, %v; want no version", v, err)
		}
		_, err = s.TagManifest(ctx, dst.ID, "y", a.blobs[0].Digest)
		wantField(t, err, "digest")
		_, err = s.TagManifest(ctx, dst.ID, "y", digest.FromString("nothing"))
		wantField(t, err, "digest")
		_, err = s.TagManifest(ctx, dst.ID, "-bad", a.manifest.Digest)
		wantField(t, err, "tag")

		// Untag takes only the tag.
		before := latestOf(t, s, dst.ID)
		if v, err = s.Untag(ctx, dst.ID, "x"); err != nil || v == nil {
			t.Fatalf("untag x: %v, %v", v, err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(tagL, list, a, b); !slices.Equal(got, want) {
			t.Fatalf("after untag: %v, want %v", got, want)
		}
		_, err = s.Untag(ctx, dst.ID, "x")
		wantField(t, err, "tag")

		// A manifest a staying list names cannot go; nothing changes.
		before = latestOf(t, s, dst.ID)
		_, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{ref(a.manifest)})
		wantField(t, err, "content_units")
		_, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{ref(&a.blobs[1])})
		wantField(t, err, "content_units")
		if latestOf(t, s, dst.ID) != before {
			t.Fatal("a refused removal made a version")
		}

		// Removing the tag takes what only it held.
		if v, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{ref(tagL)}); err != nil || v == nil {
			t.Fatalf("remove tag l: %v, %v", v, err)
		}
		if got := holds(t, s, dst.ID, v.Number); len(got) != 0 {
			t.Fatalf("after removing tag l: %v, want nothing", got)
		}

		// Copies from the source's latest version, by tag and by digest.
		if v, err = s.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, []string{"a"}); err != nil || v == nil {
			t.Fatalf("copy tag a: %v, %v", v, err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(tagA, a); !slices.Equal(got, want) {
			t.Fatalf("after copying tag a: %v, want %v", got, want)
		}
		_, err = s.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, []string{"a", "nope"})
		wantField(t, err, "names")
		zero := 0
		_, err = s.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID, Version: &zero}, []string{"a"})
		wantField(t, err, "names")
		nine := 9
		_, err = s.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID, Version: &nine}, nil)
		wantField(t, err, "source_repository_version")
		if v, err = s.CopyManifests(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, []digest.Digest{list.Digest}, nil); err != nil || v == nil {
			t.Fatalf("copy list: %v, %v", v, err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(tagA, list, a, b); !slices.Equal(got, want) {
			t.Fatalf("after copying the list: %v, want %v", got, want)
		}
		_, err = s.CopyManifests(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, []digest.Digest{list.Digest}, []string{content.MediaTypeDockerManifest})
		wantField(t, err, "digests")

		// Removing the list takes b, which only it named; a stays for tag a.
		if v, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{ref(list)}); err != nil || v == nil {
			t.Fatalf("remove list: %v, %v", v, err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(tagA, a); !slices.Equal(got, want) {
			t.Fatalf("after removing the list: %v, want %v", got, want)
		}

		// Removing a manifest removes the tags naming it.
		if v, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{ref(a.manifest)}); err != nil || v == nil {
			t.Fatalf("remove a: %v, %v", v, err)
		}
		if got := holds(t, s, dst.ID, v.Number); len(got) != 0 {
			t.Fatalf("after removing manifest a: %v, want nothing", got)
		}

		// Modify from version 1 (tag l and all it holds): drop the list,
		// add b by itself.
		one := 1
		v, err = s.Modify(ctx, dst.ID, []repository.UnitRef{ref(b.manifest)}, []repository.UnitRef{ref(tagL)}, &one)
		if err != nil || v == nil {
			t.Fatalf("modify: %v, %v", v, err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(b); !slices.Equal(got, want) {
			t.Fatalf("after modify: %v, want %v", got, want)
		}
		if v.BaseVersion == nil || *v.BaseVersion != 1 {
			t.Errorf("modify's version has base %v, want 1", v.BaseVersion)
		}
		ninety := 90
		_, err = s.Modify(ctx, dst.ID, nil, nil, &ninety)
		wantField(t, err, "base_version")

		// Bad names: unknown, wrong type, "*" with others.
		_, err = s.AddContent(ctx, dst.ID, []repository.UnitRef{{ID: "6a1f7c0e-0000-4000-8000-000000000000"}})
		wantField(t, err, "content_units")
		_, err = s.AddContent(ctx, dst.ID, []repository.UnitRef{{Type: content.TypeManifest, ID: a.blobs[0].UUID}})
		wantField(t, err, "content_units")
		_, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{{ID: repository.AllUnits}, ref(b.manifest)})
		wantField(t, err, "content_units")

		// Everything.
		if v, err = s.RemoveContent(ctx, dst.ID, []repository.UnitRef{{ID: repository.AllUnits}}); err != nil || v == nil {
			t.Fatalf(`remove "*": %v, %v`, v, err)
		}
		if got := holds(t, s, dst.ID, v.Number); len(got) != 0 {
			t.Fatalf(`after remove "*": %v`, got)
		}
		if v, err := s.RemoveContent(ctx, dst.ID, []repository.UnitRef{{ID: repository.AllUnits}}); err != nil || v != nil {
			t.Fatalf(`remove "*" of nothing: %v, %v; want no version`, v, err)
		}
	})
}

// TestRemoveKeepsShared: a blob two manifests use stays while one of
// them does, and a tag moved by copy_tags replaces the old one.
func TestRemoveKeepsShared(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, _ := s.CreateRepository(ctx, "r", "")
		a := putImage(t, s, "a")
		// c shares a's config and first layer.
		cfg, l1 := a.blobs[0], a.blobs[1]
		own := blob("c-own")
		raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d},{"mediaType":%q,"digest":%q,"size":%d}]}`,
			content.MediaTypeOCIManifest, cfg.MediaType, cfg.Digest, cfg.Size, l1.MediaType, l1.Digest, l1.Size, own.MediaType, own.Digest, own.Size)
		doc, err := content.Parse(content.MediaTypeOCIManifest, []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		cm, _ := s.PutDocument(ctx, doc)
		ownUnit, _ := s.PutBlobs(ctx, []content.Blob{own})
		c := fixture{manifest: cm, blobs: []repository.Content{cfg, l1, ownUnit[0]}}
		if _, err := s.AddContent(ctx, r.ID, []repository.UnitRef{ref(a.manifest), ref(c.manifest)}); err != nil {
			t.Fatal(err)
		}
		v, err := s.RemoveContent(ctx, r.ID, []repository.UnitRef{ref(a.manifest)})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := holds(t, s, r.ID, v.Number), closure(c); !slices.Equal(got, want) {
			t.Fatalf("after removing a: %v, want %v (c's blobs, shared ones included)", got, want)
		}
	})
}

// TestNewVersionKeepsTagsWhole: a change removing a manifest also removes
// the tags that name it, even tags added after the change was prepared;
// a change needing a unit the latest version no longer holds makes no
// version and says which unit is gone.
func TestNewVersionKeepsTagsWhole(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		repo, err := s.CreateRepository(ctx, "whole", "")
		if err != nil {
			t.Fatal(err)
		}
		img := putImage(t, s, "whole")
		tag, err := s.PutTag(ctx, "v1", img.manifest)
		if err != nil {
			t.Fatal(err)
		}
		add := []int64{img.manifest.ID, tag.ID}
		for _, b := range img.blobs {
			add = append(add, b.ID)
		}
		if _, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: add}); err != nil {
			t.Fatal(err)
		}
		v2, err := s.NewVersion(ctx, repo.ID, repository.Change{Remove: []int64{img.manifest.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if got := holds(t, s, repo.ID, v2.Number); slices.ContainsFunc(got, func(h string) bool { return strings.HasPrefix(h, "v1=") }) {
			t.Errorf("version %d holds %v: the tag outlived its manifest", v2.Number, got)
		}
		_, err = s.NewVersion(ctx, repo.ID, repository.Change{Add: []int64{tag.ID}, Need: []int64{img.manifest.ID}})
		if !errors.Is(err, repository.ErrGone) || !errors.Is(err, errdef.ErrConflict) || !strings.Contains(err.Error(), img.manifest.Digest.String()) {
			t.Errorf("a change needing a removed manifest: %v, want ErrGone naming %s", err, img.manifest.Digest)
		}
		if n := latestOf(t, s, repo.ID); n != v2.Number {
			t.Errorf("latest version %d after a refused change, want %d", n, v2.Number)
		}
	})
}

// TestExactChange: an exact change leaves the new version holding exactly
// its units, whatever the latest version held, and refuses a base or
// removals.
func TestExactChange(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		repo, err := s.CreateRepository(ctx, "exact", "")
		if err != nil {
			t.Fatal(err)
		}
		a, b := putImage(t, s, "exact-a"), putImage(t, s, "exact-b")
		if _, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: append(a.ids(), b.ids()...)}); err != nil {
			t.Fatal(err)
		}
		v, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: b.ids(), Exact: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := holds(t, s, repo.ID, v.Number), closure(b); !slices.Equal(got, want) {
			t.Errorf("exact version holds %v, want %v", got, want)
		}
		if _, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: b.ids(), Exact: true}); !errors.Is(err, repository.ErrNoChange) {
			t.Errorf("the same exact change again: %v, want ErrNoChange", err)
		}
		base := 1
		if _, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: a.ids(), Exact: true, Base: &base}); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("an exact change from a base: %v, want ErrInvalid", err)
		}
	})
}

// TestCopySparseList: copying a tag of a manifest list that its version
// holds only some children of (a sync filtered by platform) brings those
// children alone, although the others are stored (here, held by another
// repository).
func TestCopySparseList(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		src, _ := s.CreateRepository(ctx, "sparse-src", "")
		other, _ := s.CreateRepository(ctx, "sparse-other", "")
		dst, _ := s.CreateRepository(ctx, "sparse-dst", "")
		amd, arm := putImage(t, s, "sparse-amd"), putImage(t, s, "sparse-arm")
		list := putList(t, s, amd, arm)
		tag, err := s.PutTag(ctx, "multi", list)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.NewVersion(ctx, src.ID, repository.Change{Add: append(amd.ids(), list.ID, tag.ID)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.NewVersion(ctx, other.ID, repository.Change{Add: arm.ids()}); err != nil {
			t.Fatal(err)
		}
		v, err := s.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := holds(t, s, dst.ID, v.Number), closure(amd, list, tag); !slices.Equal(got, want) {
			t.Errorf("copied %v, want the source's %v", got, want)
		}
	})
}

// TestCopyRacesRetention copies tags out of a repository while new
// versions of it, with retention of one version, fold away the version
// each copy reads: every version a copy makes holds each manifest with
// all its blobs.
func TestCopyRacesRetention(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		src, _ := s.CreateRepository(ctx, "fold-src", "")
		dst, _ := s.CreateRepository(ctx, "fold-dst", "")
		one := 1
		if _, err := s.UpdateRepository(ctx, src.ID, repository.RepositoryUpdate{RetainVersions: &one}); err != nil {
			t.Fatal(err)
		}
		var imgs []fixture
		var tags []*repository.Content
		for i := range 6 {
			img := putImage(t, s, fmt.Sprintf("fold-%d", i))
			tag, err := s.PutTag(ctx, fmt.Sprintf("t%d", i), img.manifest)
			if err != nil {
				t.Fatal(err)
			}
			imgs, tags = append(imgs, img), append(tags, tag)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for w := range 2 {
			wg.Go(func() { // flip the source between two images, folding each version away
				for i := range 30 {
					k := (2*i + w) % len(imgs)
					ch := repository.Change{Add: append(imgs[k].ids(), tags[k].ID), Exact: true}
					if _, err := s.NewVersion(ctx, src.ID, ch); err != nil && !errors.Is(err, repository.ErrNoChange) {
						errs <- err
						return
					}
				}
			})
			wg.Go(func() { // copy and empty the destination
				for range 30 {
					if _, err := s.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, nil); err != nil {
						errs <- fmt.Errorf("copy: %w", err)
						return
					}
					if _, err := s.RemoveContent(ctx, dst.ID, []repository.UnitRef{{ID: "*"}}); err != nil {
						var fe *errdef.FieldError
						if !errors.As(err, &fe) {
							errs <- fmt.Errorf("remove: %w", err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		versions, _, err := s.ListVersions(ctx, dst.ID, repository.Page{Limit: repository.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range versions {
			got := holds(t, s, dst.ID, v.Number)
			for i, img := range imgs {
				in := slices.Contains(got, closure(img.manifest)[0])
				if in && !slices.Equal(intersect(got, closure(img)), closure(img)) {
					t.Errorf("version %d holds image %d without all its blobs: %v", v.Number, i, got)
				}
			}
		}
	})
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range b {
		if slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}
