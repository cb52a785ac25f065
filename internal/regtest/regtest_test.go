package regtest_test

import (
	"context"
	"io"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
)

func TestPushAndFetch(t *testing.T) {
	for name, start := range map[string]func(testing.TB) string{
		"in-process":   regtest.StartInProcess,
		"distribution": regtest.StartDistribution,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			host := start(t)
			amd, err := regtest.PushImage(ctx, host, "test/app", "amd64", regtest.ImageOpts{Layers: 2, Seed: "a"})
			if err != nil {
				t.Fatal(err)
			}
			arm, err := regtest.PushImage(ctx, host, "test/app", "", regtest.ImageOpts{Layers: 2, Seed: "b", Format: regtest.OCI,
				Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
			if err != nil {
				t.Fatal(err)
			}
			again, err := regtest.PushImage(ctx, host, "test/app", "amd64-again", regtest.ImageOpts{Layers: 2, Seed: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if again.Digest != amd.Digest {
				t.Errorf("same options gave %s then %s", amd.Digest, again.Digest)
			}
			list, err := regtest.PushIndex(ctx, host, "test/app", "multi", regtest.OCI, amd, arm)
			if err != nil {
				t.Fatal(err)
			}
			r, err := regtest.Repository(host, "test/app")
			if err != nil {
				t.Fatal(err)
			}
			var tags []string
			if err := r.Tags(ctx, "", func(ts []string) error { tags = append(tags, ts...); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(tags) != 3 {
				t.Errorf("tags = %v, want amd64, amd64-again, multi", tags)
			}
			desc, rc, err := r.FetchReference(ctx, "multi")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
			if desc.Digest != list.Digest {
				t.Errorf("multi resolves to %s, want %s", desc.Digest, list.Digest)
			}
			if name == "in-process" {
				s1, err := regtest.PushSchema1(ctx, host, "test/old", "v1", regtest.ImageOpts{Layers: 2, Seed: "c"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := regtest.PushImage(ctx, host, "test/win", "v1", regtest.ImageOpts{Seed: "w", ForeignLayers: 1}); err != nil {
					t.Fatal(err)
				}
				_ = s1
			}
		})
	}
}
