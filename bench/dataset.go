// Package bench holds the data sets and programs behind Mooring's
// benchmarks; the scripts beside it run them and print figures.
package bench

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// Dataset describes the repository the sync benchmark mirrors: Tags
// images that share a base layer and each add Unique layers of their own,
// plus Lists manifest lists of two platform images each.
type Dataset struct {
	Tags       int
	Lists      int
	BaseSize   int64 // size of the layer every image shares
	Unique     int   // layers of each image's own
	UniqueSize int64
}

// DefaultDataset is the benchmark: 100 tags and two manifest lists.
var DefaultDataset = Dataset{Tags: 100, Lists: 2, BaseSize: 4 << 20, Unique: 2, UniqueSize: 256 << 10}

// Load pushes the data set to repo on host (plain HTTP), eight pushes at a
// time, and returns how many tags it made.
func Load(ctx context.Context, host, repo string, d Dataset) (int, error) {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	base := &regtest.ImageOpts{Layers: 1, LayerSize: d.BaseSize, Seed: "base"}
	push := func(tag, seed string, p *ocispec.Platform) (ocispec.Descriptor, error) {
		return regtest.PushImage(ctx, host, repo, tag, regtest.ImageOpts{Layers: d.Unique, LayerSize: d.UniqueSize, Seed: seed, Platform: p, Base: base})
	}
	// The base first, so the others find its layer there.
	if _, err := regtest.PushImage(ctx, host, repo, "base", *base); err != nil {
		return 0, err
	}
	for i := range d.Tags - 1 {
		g.Go(func() error {
			_, err := push(fmt.Sprintf("v%03d", i), fmt.Sprintf("tag-%d", i), nil)
			return err
		})
	}
	for i := range d.Lists {
		g.Go(func() error {
			a, err := push("", fmt.Sprintf("list-%d-amd64", i), &ocispec.Platform{OS: "linux", Architecture: "amd64"})
			if err != nil {
				return err
			}
			b, err := push("", fmt.Sprintf("list-%d-arm64", i), &ocispec.Platform{OS: "linux", Architecture: "arm64"})
			if err != nil {
				return err
			}
			_, err = regtest.PushIndex(ctx, host, repo, fmt.Sprintf("multi-%d", i), regtest.Docker, a, b)
			return err
		})
	}
	return d.Tags + d.Lists, g.Wait()
}
