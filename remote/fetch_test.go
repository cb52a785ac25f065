package remote

import (
	"context"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestFetch: two tags naming one manifest list, whose two images share
// their base layers, and two tags naming one more image. The fetch stage
// GETs each tag's document, each child manifest and each blob once, and
// never has more than DownloadConcurrency requests in flight.
func TestFetch(t *testing.T) {
	ctx := context.Background()
	host, url, reqs := stageUpstream(t)
	base := &regtest.ImageOpts{Seed: "base", Layers: 2}
	a, err := regtest.PushImage(ctx, host, "team/app", "", regtest.ImageOpts{Seed: "amd64", Base: base})
	if err != nil {
		t.Fatal(err)
	}
	b, err := regtest.PushImage(ctx, host, "team/app", "", regtest.ImageOpts{Seed: "arm64", Base: base,
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"list1", "list2"} {
		if _, err := regtest.PushIndex(ctx, host, "team/app", tag, regtest.Docker, a, b); err != nil {
			t.Fatal(err)
		}
	}
	push(t, host, "img1", regtest.ImageOpts{Seed: "img", Base: base})
	push(t, host, "img2", regtest.ImageOpts{Seed: "img", Base: base})

	s, repoID := stageSyncer(t)
	r := New("up", url, "team/app")
	r.DownloadConcurrency = 2
	reqs.delay = 5 * time.Millisecond
	p := &plan{tags: []plannedTag{{name: "img1"}, {name: "img2"}, {name: "list1"}, {name: "list2"}}}
	f, err := stageRun(t, s, r, repoID).fetch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.tagged) != 4 || len(f.lists) != 1 || len(f.manifests) != 3 {
		t.Fatalf("fetched %d tags, %d lists, %d manifests; want 4, 1, 3", len(f.tagged), len(f.lists), len(f.manifests))
	}
	// 2 base layers, and each image's own layer and config.
	if len(f.blobs) != 2+3*2 {
		t.Errorf("fetched %d blobs, want 8", len(f.blobs))
	}
	if n := reqs.get("GET manifests"); n != 4+2 || f.manifestGETs != n {
		t.Errorf("%d manifest GETs (counted %d), want one per tag and per child: 6", n, f.manifestGETs)
	}
	if n := reqs.get("GET blobs"); n != len(f.blobs) || f.blobsDownloaded != n {
		t.Errorf("%d blob GETs (counted %d) for %d blobs, want one each", n, f.blobsDownloaded, len(f.blobs))
	}
	for _, b := range f.blobs {
		if info, err := s.Blobs.Stat(ctx, b.Digest); err != nil || info.Size != b.Size {
			t.Errorf("blob %s: %v, stored %+v, fetched size %d", b.Digest, err, info, b.Size)
		}
	}
	if reqs.maxFlight > r.DownloadConcurrency {
		t.Errorf("%d requests in flight at once, want at most %d", reqs.maxFlight, r.DownloadConcurrency)
	}
}
