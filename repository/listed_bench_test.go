package repository_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// BenchmarkSparseLists measures what the registry asks on a manifest miss
// (NamedByList: does a list of the version name the digest?) and what the
// content listing asks per list (ListedManifests of a 12-entry list), in a
// version of 10,000 blobs and 1,000 sparse lists of 12 entries each: both
// should cost one or two indexed queries, whatever the version holds.
func BenchmarkSparseLists(b *testing.B) {
	for _, dialect := range dbtest.Dialects() {
		s := newStore(b, dbtest.Open(b, dialect))
		ctx := context.Background()
		r := seed(b, s, "sparse", 10000)
		child := func(l, i int) digest.Digest { return digest.FromString(fmt.Sprint("child", l, i)) }
		var ids []int64
		for l := range 1000 {
			list := &content.ManifestList{MediaType: content.MediaTypeOCIIndex, SchemaVersion: 2, Raw: fmt.Appendf(nil, `{"list":%d}`, l)}
			list.Digest = digest.FromBytes(list.Raw)
			for i := range 12 {
				list.Manifests = append(list.Manifests, ocispec.Descriptor{MediaType: content.MediaTypeOCIManifest, Digest: child(l, i), Size: 500,
					Platform: &ocispec.Platform{OS: "linux", Architecture: fmt.Sprint("arch", i)}})
			}
			u, err := s.PutDocument(ctx, list)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, u.ID)
		}
		v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: ids})
		if err != nil {
			b.Fatal(err)
		}
		ref := repository.VersionRef{RepositoryID: r.ID, Number: v.Number}
		for _, c := range []struct {
			name string
			d    digest.Digest
			want bool
		}{{"named", child(500, 7), true}, {"unnamed", digest.FromString("nobody's"), false}} {
			b.Run(dialect+"/NamedByList/"+c.name, func(b *testing.B) {
				for b.Loop() {
					if got, err := s.NamedByList(ctx, ref, c.d); err != nil || got != c.want {
						b.Fatalf("NamedByList = %v, %v", got, err)
					}
				}
			})
		}
		b.Run(dialect+"/ListedManifests/entries=12", func(b *testing.B) {
			for b.Loop() {
				if l, err := s.ListedManifests(ctx, ids[500], &ref); err != nil || len(l) != 12 || l[0].Unit != nil {
					b.Fatalf("ListedManifests: %d entries, %v", len(l), err)
				}
			}
		})
	}
}
