package remote_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/task"
)

// pushTags pushes to repo an image tagged "docker", a manifest list of
// two tagged "multi", and n tags naming one more image, all with layers
// of their own (seeded by repo).
func pushTags(t *testing.T, host, repo string, n int) {
	t.Helper()
	ctx := context.Background()
	push := func(tag, seed string, p *ocispec.Platform) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, host, repo, tag, regtest.ImageOpts{Layers: 2, Seed: repo + seed, Platform: p})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	push("docker", "docker", nil)
	a, b := push("", "amd64", amd64), push("", "arm64", arm64)
	if _, err := regtest.PushIndex(ctx, host, repo, "multi", regtest.Docker, a, b); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		push(fmt.Sprintf("t%02d", i), "many", nil)
	}
}

// TestResyncWritesNothing: a resync of an upstream that has not changed
// makes one HEAD request per tag and does not write to the database at all
// — no INSERT, UPDATE or DELETE, and no transaction (which would take the
// write lock on SQLite) — whatever the policy, mirror or not, the remote
// stored or not. Each case then shows that a resync that has something to
// do still does it.
func TestResyncWritesNothing(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		host, url, reqs := upstream(t)
		const tags = 22
		counter := &mooringdb.StatementCounter{}
		db.AddQueryHook(counter)
		for _, tc := range []struct {
			name   string
			policy remote.Policy
			stored bool
			mirror bool
			// change makes the next resync do something, and check says
			// whether it did.
			change func(t *testing.T, f *fixture, r *remote.Remote)
			check  func(t *testing.T, f *fixture, res *remote.SyncResult)
		}{
			{name: "additive", policy: remote.PolicyImmediate,
				change: func(t *testing.T, f *fixture, r *remote.Remote) {
					if _, err := f.repos.Untag(ctx, f.repoID, "t07"); err != nil {
						t.Fatal(err)
					}
				},
				check: func(t *testing.T, f *fixture, res *remote.SyncResult) {
					if _, ok := f.tags(t)["t07"]; !ok || res.Version == nil {
						t.Errorf("a tag removed from the repository was not synced back (version %v)", res.Version)
					}
				}},
			{name: "mirror stored remote", policy: remote.PolicyImmediate, stored: true, mirror: true,
				change: func(t *testing.T, f *fixture, r *remote.Remote) { r.ExcludeTags = []string{"t1*"} },
				check: func(t *testing.T, f *fixture, res *remote.SyncResult) {
					if n := len(f.tags(t)); n != tags-10 || res.Version == nil {
						t.Errorf("mirror sync without t10-t19 left %d tags, want %d (version %v)", n, tags-10, res.Version)
					}
				}},
			{name: "on_demand", policy: remote.PolicyOnDemand, stored: true,
				change: func(t *testing.T, f *fixture, r *remote.Remote) { r.Policy = remote.PolicyImmediate },
				check: func(t *testing.T, f *fixture, res *remote.SyncResult) {
					if res.BlobsDownloaded == 0 {
						t.Error("an immediate resync of an on_demand sync downloaded no blob")
					}
					for _, b := range f.units(t, content.TypeBlob) {
						if b.OnDemand {
							t.Errorf("blob %s still on-demand after an immediate sync", b.Digest)
						}
					}
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// Content of its own: blob units are shared by every
				// repository of db, each fixture has its own blob store.
				upstreamRepo := "team/" + strings.ReplaceAll(tc.name, " ", "-")
				pushTags(t, host, upstreamRepo, tags-2)
				f := newFixtureIn(t, db, "mirror-"+tc.name)
				r := remote.New("up-"+tc.name, url, upstreamRepo)
				r.Policy = tc.policy
				if tc.stored {
					if err := remote.NewStore(db).Create(ctx, r); err != nil {
						t.Fatal(err)
					}
				}
				opts := remote.SyncOptions{Mirror: tc.mirror}
				if res := f.sync(t, r, opts); res.Version == nil {
					t.Fatal("first sync made no version")
				}
				reqs.reset()
				counter.Reset()
				res := f.sync(t, r, opts)
				if w := counter.Writes(); w != 0 || res.Version != nil {
					t.Errorf("resync of an unchanged upstream: %d statements that write (%v), version %v", w, counter.Counts(), res.Version)
				}
				if n := reqs.get("HEAD manifests"); n != tags || reqs.get("GET manifests") != 0 || reqs.get("GET blobs") != 0 {
					t.Errorf("resync: %d HEADs (want %d), %d manifest GETs, %d blob GETs", n, tags, reqs.get("GET manifests"), reqs.get("GET blobs"))
				}

				tc.change(t, f, r)
				counter.Reset()
				res = f.sync(t, r, opts)
				if counter.Writes() == 0 {
					t.Errorf("a resync with something to do wrote nothing (%v)", counter.Counts())
				}
				tc.check(t, f, res)
			})
		}
	})
}

// holdTag holds every request for one tag's manifest until released.
type holdTag struct {
	h       http.Handler
	path    string
	release chan struct{}
}

func (h *holdTag) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == h.path {
		<-h.release
	}
	h.h.ServeHTTP(w, r)
}

// TestSyncProgressCountsTags: the processing.tag report counts each tag
// as its request is answered, so it moves long before the sync ends: with
// the request for one tag held, every other tag is counted, on a first
// sync (a GET per tag) and on a resync (a HEAD per tag).
func TestSyncProgressCountsTags(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db)
		host := regtest.StartInProcess(t)
		const n = 40
		for i := range n {
			name := fmt.Sprintf("t%02d", i)
			if i == n-1 {
				name = "zz-held"
			}
			if _, err := regtest.PushImage(context.Background(), host, "team/app", name, regtest.ImageOpts{Seed: fmt.Sprint("tag ", i%5)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, sync := range []string{"first sync", "resync"} {
			hold := &holdTag{h: proxyTo(t, host), path: "/v2/team/app/manifests/zz-held", release: make(chan struct{})}
			r := remote.New("up", serve(t, hold), "team/app")
			p := &task.Progress{}
			done := make(chan error, 1)
			go func() {
				_, err := f.syncer.Sync(context.Background(), r, f.repoID, remote.SyncOptions{Progress: p})
				done <- err
			}()
			var counted int64
			for deadline := time.Now().Add(30 * time.Second); counted < n-1 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				counted = tagReport(p).Done
			}
			close(hold.release)
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", sync, err)
			}
			if counted < n-1 {
				t.Errorf("%s: with one tag's request held, the tag report counted %d of %d tags", sync, counted, n)
			}
			if rep := tagReport(p); rep.Done != n || rep.Total != n || rep.State != task.StateCompleted {
				t.Errorf("%s: tag report ended %+v, want %d of %d completed", sync, rep, n, n)
			}
		}
	})
}

func tagReport(p *task.Progress) task.ProgressReport {
	for _, rep := range p.Reports() {
		if rep.Code == remote.CodeTags {
			return rep
		}
	}
	return task.ProgressReport{}
}
