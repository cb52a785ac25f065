package repository_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// The point queries answer about one version: what v1 held stays so after
// v2 removes it, and what another repository holds does not leak in.
func TestPointQueries(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		f := putImage(t, s, "points")
		tagB, err := s.PutTag(ctx, "b", f.manifest)
		if err != nil {
			t.Fatal(err)
		}
		tagA, err := s.PutTag(ctx, "a", f.manifest)
		if err != nil {
			t.Fatal(err)
		}
		repo, _ := s.CreateRepository(ctx, "points", "")
		other, _ := s.CreateRepository(ctx, "other", "")
		if _, err := s.NewVersion(ctx, other.ID, repository.Change{Add: f.ids()}); err != nil {
			t.Fatal(err)
		}
		v1, err := s.NewVersion(ctx, repo.ID, repository.Change{Add: append(f.ids(), tagA.ID, tagB.ID)})
		if err != nil {
			t.Fatal(err)
		}
		v2, err := s.NewVersion(ctx, repo.ID, repository.Change{Remove: []int64{f.blobs[1].ID, tagA.ID}})
		if err != nil {
			t.Fatal(err)
		}
		at := func(v *repository.Version) repository.VersionRef {
			return repository.VersionRef{RepositoryID: repo.ID, Number: v.Number}
		}
		gone := f.blobs[1].Digest
		for _, c := range []struct {
			v    *repository.Version
			d    digest.Digest
			want bool
		}{{v1, gone, true}, {v2, gone, false}, {v2, f.blobs[0].Digest, true}, {v2, digest.FromString("nothing"), false}} {
			got, err := s.VersionHas(ctx, at(c.v), content.TypeBlob, c.d)
			if err != nil || got != c.want {
				t.Errorf("VersionHas(v%d, %s) = %v, %v; want %v", c.v.Number, c.d, got, err, c.want)
			}
		}
		if ok, _ := s.VersionHas(ctx, at(v2), content.TypeManifest, gone); ok {
			t.Error("VersionHas found a blob when asked for a manifest")
		}
		units, err := s.InVersion(ctx, at(v2), f.manifest.Digest)
		if err != nil {
			t.Fatal(err)
		}
		var types []content.Type
		for _, u := range units {
			types = append(types, u.Type)
		}
		// The manifest and the tag "b" (tags carry their target's digest).
		if !slices.Contains(types, content.TypeManifest) {
			t.Errorf("InVersion(v2, manifest) types = %v; want the manifest", types)
		}
		if only, _ := s.InVersion(ctx, at(v2), f.manifest.Digest, content.TypeManifest); len(only) != 1 {
			t.Errorf("InVersion with a type filter = %d units, want 1", len(only))
		}
		for v, want := range map[*repository.Version][]string{v1: {"a", "b"}, v2: {"b"}} {
			names, err := s.TagNames(ctx, at(v))
			if err != nil || !slices.Equal(names, want) {
				t.Errorf("TagNames(v%d) = %v, %v; want %v", v.Number, names, err, want)
			}
		}
		for _, c := range []struct {
			v    *repository.Version
			name string
			want int64
		}{{v1, "a", tagA.ID}, {v2, "a", 0}, {v2, "b", tagB.ID}, {v2, "c", 0}} {
			tag, err := s.Tag(ctx, at(c.v), c.name)
			switch {
			case c.want == 0 && !errors.Is(err, errdef.ErrNotFound):
				t.Errorf("Tag(v%d, %q) = %v, %v; want errdef.ErrNotFound", c.v.Number, c.name, tag, err)
			case c.want != 0 && (err != nil || tag.ID != c.want || tag.TaggedID != f.manifest.ID):
				t.Errorf("Tag(v%d, %q) = %+v, %v; want unit %d naming the manifest", c.v.Number, c.name, tag, err, c.want)
			}
		}
		var n int
		for u, err := range s.Contents(ctx, repository.ContentFilter{In: ptr(at(v2))}) {
			if err != nil {
				t.Fatal(err)
			}
			if u.Digest == gone {
				t.Errorf("Contents(v2) yields %s, which v2 removed", gone)
			}
			n++
		}
		if n != 4 { // config, one layer, manifest, tag b
			t.Errorf("Contents(v2) yielded %d units, want 4", n)
		}
	})
}

func ptr[T any](v T) *T { return &v }
