package repository_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// seed makes a repository whose latest version holds n blob units.
func seed(b *testing.B, s *repository.Store, name string, n int) *repository.Repository {
	b.Helper()
	ctx := context.Background()
	r, err := s.CreateRepository(ctx, name, "")
	if err != nil {
		b.Fatal(err)
	}
	const step = 10000
	for start := 0; start < n; start += step {
		blobs := make([]content.Blob, 0, step)
		for i := start; i < min(start+step, n); i++ {
			blobs = append(blobs, content.Blob{Digest: digest.FromString(fmt.Sprint(name, i)), Size: int64(i), MediaType: content.MediaTypeOCILayerGzip})
		}
		units, err := s.PutBlobs(ctx, blobs)
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]int64, len(units))
		for i, u := range units {
			ids[i] = u.ID
		}
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: ids}); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

var sizes = []int{1000, 10000, 100000}

// BenchmarkNewVersion adds 10 units to a repository holding 1k, 10k and
// 100k units; the cost should not grow with the repository.
func BenchmarkNewVersion(b *testing.B) {
	for _, dialect := range dbtest.Dialects() {
		for _, size := range sizes {
			b.Run(fmt.Sprintf("%s/units=%d", dialect, size), func(b *testing.B) {
				d := dbtest.Open(b, dialect)
				s := newStore(b, d)
				ctx := context.Background()
				r := seed(b, s, "bench", size)
				blobs := make([]content.Blob, 10*b.N)
				for i := range blobs {
					blobs[i] = content.Blob{Digest: digest.FromString(fmt.Sprint("new", i)), Size: 1}
				}
				units, err := s.PutBlobs(ctx, blobs)
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ids := make([]int64, 10)
					for k := range ids {
						ids[k] = units[10*i+k].ID
					}
					if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: ids}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVersionQueries measures, on a 100k-unit version, one page of a
// listing (first, middle, last) and the content summary.
func BenchmarkVersionQueries(b *testing.B) {
	for _, dialect := range dbtest.Dialects() {
		d := dbtest.Open(b, dialect)
		s := newStore(b, d)
		ctx := context.Background()
		const size = 100000
		r := seed(b, s, "q", size)
		ref := &repository.VersionRef{RepositoryID: r.ID, Number: r.LatestVersion}
		if latest, _ := s.Repository(ctx, r.ID); latest != nil {
			ref.Number = latest.LatestVersion
		}
		for _, off := range []int{0, size / 2, size - 100} {
			b.Run(fmt.Sprintf("%s/list/offset=%d", dialect, off), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					units, total, err := s.ListContent(ctx, repository.ContentFilter{In: ref, Page: repository.Page{Limit: 100, Offset: off}})
					if err != nil || total != size || len(units) != 100 {
						b.Fatalf("page: %d units of %d, %v", len(units), total, err)
					}
				}
			})
		}
		b.Run(dialect+"/list-by-type/offset=last", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				units, _, err := s.ListContent(ctx, repository.ContentFilter{Type: content.TypeBlob, In: ref, Page: repository.Page{Limit: 100, Offset: size - 100}})
				if err != nil || len(units) != 100 {
					b.Fatalf("page: %d units, %v", len(units), err)
				}
			}
		})
		b.Run(dialect+"/summary", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sum, err := s.Summary(ctx, r.ID, ref.Number)
				if err != nil || sum.Present[content.TypeBlob] != size {
					b.Fatalf("summary %+v, %v", sum, err)
				}
			}
		})
	}
}

// BenchmarkLeaseBlobs leases and releases the blobs of a sync of the
// bench data set (311 blobs) and of 10,000 blobs: what guarding a sync
// against orphan cleanup adds to it.
func BenchmarkLeaseBlobs(b *testing.B) {
	for _, dialect := range dbtest.Dialects() {
		for _, n := range []int{311, 10000} {
			b.Run(fmt.Sprintf("%s/blobs=%d", dialect, n), func(b *testing.B) {
				s := newStore(b, dbtest.Open(b, dialect))
				ctx := context.Background()
				ds := make([]digest.Digest, n)
				for i := range ds {
					ds[i] = digest.FromString(fmt.Sprint("lease", i))
				}
				for b.Loop() {
					l, err := s.LeaseBlobs(ctx, ds)
					if err != nil {
						b.Fatal(err)
					}
					if err := l.Release(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
