package remote_test

import (
	"context"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// TestSyncDistribution syncs from CNCF distribution, whose headers,
// content negotiation and HEAD behaviour are those of real registries.
func TestSyncDistribution(t *testing.T) {
	host := regtest.StartDistribution(t)
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		want := pushSample(t, host, "team/app")
		reqs := &counter{n: map[string]int{}, h: proxyTo(t, host)}
		r := remote.New("dist", serve(t, reqs), "team/app")
		res := f.sync(t, r, remote.SyncOptions{})
		if res.Version == nil || res.Tags != 3 || res.Manifests != 4 || res.ManifestLists != 1 || res.Blobs != 13 {
			t.Fatalf("sync from distribution: %+v", *res)
		}
		for tag, d := range want {
			if got := f.tags(t)[tag]; got != d.Digest {
				t.Errorf("tag %s = %s, want %s", tag, got, d.Digest)
			}
		}
		u, err := f.repos.ContentByDigest(ctx, content.TypeManifest, want["oci"].Digest)
		if err != nil || u.MediaType != content.MediaTypeOCIManifest || int64(len(u.Raw)) != want["oci"].Size {
			t.Errorf("OCI manifest stored as %v, %v", u, err)
		}
		f.checkBlob(t, regtest.LayerDescriptor("docker", 1, 1024, "").Digest, regtest.LayerReader("docker", 1, 1024))

		reqs.reset()
		res = f.sync(t, r, remote.SyncOptions{Mirror: true})
		if res.Version != nil || reqs.get("GET manifests") != 0 || reqs.get("GET blobs") != 0 {
			t.Errorf("resync: version %v, %d manifest GETs, %d blob GETs; want none", res.Version, reqs.get("GET manifests"), reqs.get("GET blobs"))
		}
	})
}
