package remote_test

import (
	"context"
	"testing"

	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// BenchmarkSync times a first sync and a resync of a 100-tag repository
// with two manifest lists, from CNCF distribution (skipped when it is not
// installed) and from the in-process registry, into SQLite (and PostgreSQL
// when MOORING_TEST_POSTGRES is set). bench/sync.sh compares the first
// sync with skopeo.
func BenchmarkSync(b *testing.B) {
	ds := bench.DefaultDataset
	ds.BaseSize, ds.UniqueSize = 1<<20, 64<<10
	for _, reg := range []struct {
		name  string
		start func(testing.TB) string
	}{{"distribution", regtest.StartDistribution}, {"in-process", regtest.StartInProcess}} {
		b.Run(reg.name, func(b *testing.B) {
			host := reg.start(b)
			if _, err := bench.Load(context.Background(), host, "bench/app", ds); err != nil {
				b.Fatal(err)
			}
			for _, dialect := range dbtest.Dialects() {
				b.Run(dialect, func(b *testing.B) {
					benchSync(b, host, dialect)
				})
			}
		})
	}
}

func benchSync(b *testing.B, host, dialect string) {
	ctx := context.Background()
	r := remote.New("bench", "http://"+host, "bench/app")
	b.Run("first", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			f := newBenchFixture(b, dialect)
			b.StartTimer()
			if _, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("resync", func(b *testing.B) {
		f := newBenchFixture(b, dialect)
		if _, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			res, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if res.Version != nil || res.ManifestRequests != 0 {
				b.Fatalf("resync of an unchanged upstream: version %v, %d manifest GETs", res.Version, res.ManifestRequests)
			}
		}
	})
}

func newBenchFixture(b *testing.B, dialect string) *fixture {
	return newFixture(b, dbtest.Open(b, dialect))
}
