package distribution_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// TestPullThroughDistributions: the rules of pull-through base paths. A
// pull-through distribution overlaps no other distribution; only the
// distributions it makes are under it, and those may nest; deleting it
// deletes them.
func TestPullThroughDistributions(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := setup(t, db, time.Second)
		if err := f.dists.Create(ctx, &distribution.Distribution{Name: "plain", BasePath: "team/app", RepositoryID: &f.repo.ID}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []struct {
			p     distribution.PullThroughDistribution
			field string
			kind  error
		}{
			{distribution.PullThroughDistribution{BasePath: "hub", RemoteID: "r"}, "name", errdef.ErrInvalid},
			{distribution.PullThroughDistribution{Name: "hub", BasePath: "Hub", RemoteID: "r"}, "base_path", errdef.ErrInvalid},
			{distribution.PullThroughDistribution{Name: "hub", BasePath: "hub"}, "remote", errdef.ErrInvalid},
			{distribution.PullThroughDistribution{Name: "hub", BasePath: "team", RemoteID: "r"}, "base_path", errdef.ErrConflict},
			{distribution.PullThroughDistribution{Name: "hub", BasePath: "team/app/x", RemoteID: "r"}, "base_path", errdef.ErrConflict},
			{distribution.PullThroughDistribution{Name: "hub", BasePath: "hub", RemoteID: "r", MaxSize: new(int64)}, "max_size", errdef.ErrInvalid},
		} {
			err := f.dists.CreatePullThrough(ctx, &bad.p)
			var fe *errdef.FieldError
			if !errors.As(err, &fe) || fe.Field != bad.field || !errors.Is(err, bad.kind) {
				t.Errorf("create %+v: %v, want %v on %s", bad.p, err, bad.kind, bad.field)
			}
		}
		pt := &distribution.PullThroughDistribution{Name: "hub", BasePath: "hub", RemoteID: "r", TagTTLSeconds: -1}
		if err := f.dists.CreatePullThrough(ctx, pt); err != nil {
			t.Fatal(err)
		}
		if pt.TagTTL() != distribution.DefaultTagTTL {
			t.Errorf("default TTL %v", pt.TagTTL())
		}
		if err := f.dists.CreatePullThrough(ctx, &distribution.PullThroughDistribution{Name: "hub2", BasePath: "hub/x", RemoteID: "r"}); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("a pull-through distribution under another: %v", err)
		}
		repo2, _ := f.repos.CreateRepository(ctx, "other", "")
		for _, path := range []string{"hub", "hub/library/alpine"} {
			err := f.dists.Create(ctx, &distribution.Distribution{Name: path, BasePath: path, RepositoryID: &repo2.ID})
			if !errors.Is(err, errdef.ErrConflict) {
				t.Errorf("a plain distribution at %s: %v, want a conflict", path, err)
			}
		}
		for _, path := range []string{"hub/a", "hub/a/b"} {
			repo, _ := f.repos.CreateRepository(ctx, path, "")
			rm := "remote-" + path
			if err := f.dists.Create(ctx, &distribution.Distribution{Name: path, BasePath: path, RepositoryID: &repo.ID, PullThroughID: &pt.ID, RemoteID: &rm}); err != nil {
				t.Errorf("the cache's distribution %s: %v", path, err)
			}
		}
		if got, up, err := f.dists.PullThroughFor(ctx, "hub/library/alpine"); err != nil || got.ID != pt.ID || up != "library/alpine" {
			t.Errorf("PullThroughFor: %v %q %v", got, up, err)
		}
		if _, _, err := f.dists.PullThroughFor(ctx, "hubble/x"); !errors.Is(err, errdef.ErrNameUnknown) {
			t.Errorf("PullThroughFor a path outside: %v", err)
		}
		pt.BasePath = "cache"
		if err := f.dists.UpdatePullThrough(ctx, pt); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("moving a cache that made distributions: %v", err)
		}
		if err := f.dists.DeletePullThrough(ctx, pt.ID); err != nil {
			t.Fatal(err)
		}
		if _, n, _ := f.dists.List(ctx, distribution.Filter{}); n != 1 {
			t.Errorf("%d distributions left, want the plain one", n)
		}
	})
}

// fakeFetcher serves every blob as the given bytes, counting calls.
type fakeFetcher struct {
	data  []byte
	calls int
}

func (ff *fakeFetcher) FetchBlob(_ context.Context, _ string, b content.Blob) (io.ReadSeekCloser, error) {
	ff.calls++
	return nopSeekCloser{strings.NewReader(string(ff.data))}, nil
}

type nopSeekCloser struct{ *strings.Reader }

func (nopSeekCloser) Close() error { return nil }

// TestRegistryOnDemand: a blob a version records without its bytes is
// served through the Fetcher, never redirected; its pulls are noted and
// written by FlushPulls, the latest time winning.
func TestRegistryOnDemand(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := setup(t, db, time.Nanosecond)
		data := []byte("on-demand layer")
		d := digest.FromBytes(data)
		ff := &fakeFetcher{data: data}
		reg := distribution.NewRegistry(f.dists, f.repos, f.blobs, distribution.Options{TTL: time.Nanosecond, Fetcher: ff})
		units, err := f.repos.PutOnDemandBlobs(ctx, []content.Blob{{Digest: d, Size: int64(len(data)), MediaType: content.MediaTypeOCILayerGzip}})
		if err != nil || !units[0].OnDemand {
			t.Fatalf("put on-demand: %+v %v", units, err)
		}
		if _, err := f.repos.NewVersion(ctx, f.repo.ID, repository.Change{Add: []int64{units[0].ID}}); err != nil {
			t.Fatal(err)
		}
		if err := f.dists.Create(ctx, &distribution.Distribution{Name: "foo", BasePath: "foo", RepositoryID: &f.repo.ID}); err != nil {
			t.Fatal(err)
		}
		v, err := reg.Resolve(ctx, "foo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.OpenBlob(ctx, v, d); !errors.Is(err, errdef.ErrBlobUnknown) {
			t.Errorf("without a Fetcher: %v, want BLOB_UNKNOWN", err)
		}
		b, err := reg.OpenBlob(ctx, v, d)
		if err != nil || !b.OnDemand || b.Size != int64(len(data)) {
			t.Fatalf("open: %+v %v", b, err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if string(got) != string(data) || ff.calls != 1 {
			t.Errorf("read %q after %d fetches", got, ff.calls)
		}
		if err := reg.FlushPulls(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		reg.OpenBlob(ctx, v, d)
		if err := reg.FlushPulls(ctx); err != nil {
			t.Fatalf("a second flush of the same blob: %v", err)
		}
		var n int
		if err := db.NewSelect().Table("blob_pulls").ColumnExpr("count(*)").Where("digest = ?", d).Scan(ctx, &n); err != nil || n != 1 {
			t.Errorf("%d last-pull rows, %v", n, err)
		}
	})
}
