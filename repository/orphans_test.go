package repository_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

func exists(t testing.TB, s *repository.Store, id int64) bool {
	t.Helper()
	_, err := s.ContentByID(context.Background(), id)
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestDeleteOrphans: units no version holds go, oldest referrers first;
// what a version holds, what a kept unit refers to, what is newer than
// the cutoff and what a writer leases stay.
func TestDeleteOrphans(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, _ := s.CreateRepository(ctx, "r", "")
		kept := putImage(t, s, "kept")
		keptTag, _ := s.PutTag(ctx, "kept", kept.manifest)
		// A version that holds a manifest but not its blobs: the blobs
		// stay, for the manifest needs them.
		partial := putImage(t, s, "partial")
		// Held by version 1 only, removed in version 2: still held.
		old := putImage(t, s, "old")
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: append(append(kept.ids(), keptTag.ID, partial.manifest.ID), old.ids()...)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Remove: old.ids()}); err != nil {
			t.Fatal(err)
		}
		// Orphans: an image with a tag, listed by a list listed by an
		// index of indexes.
		b, c := putImage(t, s, "b"), putImage(t, s, "c")
		bTag, _ := s.PutTag(ctx, "b", b.manifest)
		inner := putList(t, s, b, c)
		outer := putList(t, s, fixture{manifest: inner})
		leased := putImage(t, s, "leased")
		orphans := append(append(b.ids(), c.ids()...), bTag.ID, inner.ID, outer.ID)

		if n, err := s.DeleteOrphans(ctx, time.Now().Add(-time.Hour), nil); err != nil || len(n) != 0 {
			t.Fatalf("cutoff before everything: deleted %v, %v; want nothing", n, err)
		}
		lease, err := s.LeaseBlobs(ctx, []digest.Digest{leased.blobs[0].Digest})
		if err != nil {
			t.Fatal(err)
		}
		var progress int
		n, err := s.DeleteOrphans(ctx, time.Now().Add(time.Second), func(k int) { progress = k })
		if err != nil {
			t.Fatal(err)
		}
		want := map[content.Type]int{content.TypeManifestTag: 1, content.TypeManifestList: 2, content.TypeManifest: 3, content.TypeBlob: 8}
		if fmt.Sprint(n) != fmt.Sprint(want) || progress != 14 {
			t.Fatalf("deleted %v (progress %d), want %v (14)", n, progress, want)
		}
		for _, id := range orphans {
			if exists(t, s, id) {
				t.Errorf("orphan %d was kept", id)
			}
		}
		for _, id := range append(append(append(kept.ids(), keptTag.ID), partial.ids()...), old.ids()...) {
			if !exists(t, s, id) {
				t.Errorf("unit %d that a version holds or a kept manifest uses was deleted", id)
			}
		}
		if !exists(t, s, leased.blobs[0].ID) || exists(t, s, leased.blobs[1].ID) {
			t.Errorf("leased blob deleted, or unleased one kept")
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// Deleting the repository orphans what it held.
		if err := s.DeleteRepository(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if n, err = s.DeleteOrphans(ctx, time.Now().Add(time.Second), nil); err != nil {
			t.Fatal(err)
		}
		if n[content.TypeBlob] != 10 || n[content.TypeManifest] != 3 || n[content.TypeManifestTag] != 1 {
			t.Errorf("after deleting the repository, deleted %v", n)
		}
	})
}

func putBytes(t testing.TB, blobs *filesystem.Driver, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	if err := blobs.Put(context.Background(), d, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSweepBlobs: bytes no unit, reference or lease keeps go; the rest
// stay, and what was stored after the cutoff too.
func TestSweepBlobs(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		blobs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		withUnit := putBytes(t, blobs, []byte("has a unit"))
		if _, err := s.PutBlobs(ctx, []content.Blob{{Digest: withUnit, Size: 10}}); err != nil {
			t.Fatal(err)
		}
		free := putBytes(t, blobs, []byte("nothing keeps me"))
		leasedD := putBytes(t, blobs, []byte("leased"))
		lease, err := s.LeaseBlobs(ctx, []digest.Digest{leasedD})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := s.SweepBlobs(ctx, blobs, time.Now().Add(-time.Hour), nil); err != nil || res.Blobs != 0 {
			t.Fatalf("cutoff before everything: %+v, %v", res, err)
		}
		res, err := s.SweepBlobs(ctx, blobs, time.Now().Add(time.Second), nil)
		if err != nil || res.Blobs != 1 || res.Bytes != int64(len("nothing keeps me")) {
			t.Fatalf("sweep: %+v, %v; want 1 blob of 16 bytes", res, err)
		}
		for _, c := range []struct {
			d    digest.Digest
			want bool
		}{{withUnit, true}, {free, false}, {leasedD, true}} {
			if _, err := blobs.Stat(ctx, c.d); (err == nil) != c.want {
				t.Errorf("blob %s stored = %v, want %v", c.d, err == nil, c.want)
			}
		}
		lease.Release(ctx)
		if res, err := s.SweepBlobs(ctx, blobs, time.Now().Add(time.Second), nil); err != nil || res.Blobs != 1 {
			t.Fatalf("sweep after release: %+v, %v; want the leased blob gone", res, err)
		}
	})
}

// TestLeaseWaitsForDeletion: a writer leasing a blob whose deletion is in
// flight waits until it ends, then finds the bytes gone.
func TestLeaseWaitsForDeletion(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		dg := digest.FromString("being deleted")
		if _, err := d.ExecContext(ctx, "INSERT INTO blob_deletions (digest, sweep_id, started_at) VALUES (?, 'x', ?)", dg, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			l, err := s.LeaseBlobs(ctx, []digest.Digest{dg})
			if err == nil {
				l.Release(ctx)
			}
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("LeaseBlobs returned (%v) while a deletion was in flight", err)
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := d.ExecContext(ctx, "DELETE FROM blob_deletions WHERE digest = ?", dg); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeasedBytesSurviveSweeps: writers lease blobs, store them if
// missing and rely on them while sweeps that would delete every unleased
// blob run in a loop beside them: bytes a writer relies on never vanish.
func TestLeasedBytesSurviveSweeps(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		blobs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var pool [][]byte
		for i := range 12 {
			b := fmt.Appendf(nil, "blob %d", i)
			putBytes(t, blobs, b)
			pool = append(pool, b)
		}
		stop := make(chan struct{})
		var sweeps, deleted int
		swept := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					swept <- nil
					return
				default:
				}
				res, err := s.SweepBlobs(ctx, blobs, time.Now().Add(time.Hour), nil)
				if err != nil {
					swept <- err
					return
				}
				sweeps++
				deleted += res.Blobs
			}
		}()
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for range 40 {
					b := pool[rng.IntN(len(pool))]
					dg := digest.FromBytes(b)
					l, err := s.LeaseBlobs(ctx, []digest.Digest{dg})
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := blobs.Stat(ctx, dg); errors.Is(err, errdef.ErrNotFound) {
						if err := blobs.Put(ctx, dg, int64(len(b)), bytes.NewReader(b)); err != nil {
							t.Error(err)
						}
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					if _, err := blobs.Stat(ctx, dg); err != nil {
						t.Errorf("leased blob %s vanished: %v", dg, err)
					}
					l.Release(ctx)
				}
			})
		}
		wg.Wait()
		close(stop)
		if err := <-swept; err != nil {
			t.Fatal(err)
		}
		t.Logf("%d sweeps deleted %d blobs beside the writers", sweeps, deleted)
		if deleted == 0 {
			t.Error("the sweeps deleted nothing: the test proved nothing")
		}
	})
}
