package remote_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// TestDigestsInIncludes: an include pattern that is a digest syncs that
// manifest without a tag, beside the tags other patterns keep; a digest
// the upstream lacks fails the sync saying so.
func TestDigestsInIncludes(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	ctx := context.Background()
	host := regtest.StartInProcess(t)
	a, err := regtest.PushImage(ctx, host, "library/app", "1.0", regtest.ImageOpts{Layers: 1, Seed: "include-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := regtest.PushImage(ctx, host, "library/app", "2.0", regtest.ImageOpts{Layers: 1, Seed: "include-b"})
	if err != nil {
		t.Fatal(err)
	}
	r := remote.New("app", "http://"+host, "library/app")
	r.IncludeTags = []string{b.Digest.String()}
	res := f.sync(t, r, remote.SyncOptions{})
	if res.Tags != 0 || res.Manifests != 1 {
		t.Errorf("include [digest of 2.0]: %d tags, %d manifests; want 0 and 1", res.Tags, res.Manifests)
	}
	var manifests []digest.Digest
	for _, u := range f.units(t, content.TypeManifest) {
		manifests = append(manifests, u.Digest)
	}
	if !slices.Equal(manifests, []digest.Digest{b.Digest}) {
		t.Errorf("manifests in the version: %v, want only %s", manifests, b.Digest)
	}
	r.IncludeTags = []string{"1.0", b.Digest.String()}
	f.sync(t, r, remote.SyncOptions{})
	if tags := f.tags(t); tags["1.0"] != a.Digest || len(tags) != 1 {
		t.Errorf("include [1.0, digest]: tags %v, want only 1.0", tags)
	}
	r.IncludeTags = []string{digest.FromString("nothing").String()}
	if _, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{}); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("a digest the upstream lacks: %v, want ErrNotFound", err)
	}
}
