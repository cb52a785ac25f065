package repository_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

func newStore(t testing.TB, d *bun.DB) *repository.Store {
	t.Helper()
	if err := repository.Migrate(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return repository.NewStore(d)
}

// fixture stores an image: config, two layers, a manifest, and a tag.
type fixture struct {
	blobs    []repository.Content
	manifest *repository.Content
}

func blob(seed string) content.Blob {
	return content.Blob{Digest: digest.FromString(seed), Size: int64(len(seed)), MediaType: content.MediaTypeOCILayerGzip}
}

func putImage(t testing.TB, s *repository.Store, seed string) fixture {
	t.Helper()
	ctx := context.Background()
	cfg, l1, l2 := blob(seed+"-config"), blob(seed+"-l1"), blob(seed+"-l2")
	cfg.MediaType = content.MediaTypeOCIConfig
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d},{"mediaType":%q,"digest":%q,"size":%d}]}`,
		content.MediaTypeOCIManifest, cfg.MediaType, cfg.Digest, cfg.Size, l1.MediaType, l1.Digest, l1.Size, l2.MediaType, l2.Digest, l2.Size)
	doc, err := content.Parse(content.MediaTypeOCIManifest, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := s.PutBlobs(ctx, []content.Blob{cfg, l1, l2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.PutDocument(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{blobs: blobs, manifest: m}
}

func (f fixture) ids() []int64 {
	ids := []int64{f.manifest.ID}
	for _, b := range f.blobs {
		ids = append(ids, b.ID)
	}
	return ids
}

func members(t testing.TB, s *repository.Store, repoID string, n int) []int64 {
	t.Helper()
	var ids []int64
	for off := 0; ; off += repository.MaxLimit {
		units, total, err := s.ListContent(context.Background(), repository.ContentFilter{
			In: &repository.VersionRef{RepositoryID: repoID, Number: n}, Page: repository.Page{Limit: repository.MaxLimit, Offset: off}})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range units {
			ids = append(ids, u.ID)
		}
		if off+repository.MaxLimit >= total {
			break
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func TestRepositoryLifecycle(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, err := s.CreateRepository(ctx, "foo", "a test")
		if err != nil {
			t.Fatal(err)
		}
		v0, err := s.Version(ctx, r.ID, 0)
		if err != nil {
			t.Fatalf("version 0 missing after create: %v", err)
		}
		if v0.BaseVersion != nil {
			t.Errorf("version 0 base = %v, want none", *v0.BaseVersion)
		}
		sum, err := s.Summary(ctx, r.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Present)+len(sum.Added)+len(sum.Removed) != 0 {
			t.Errorf("version 0 is not empty: %+v", sum)
		}
		if _, err := s.CreateRepository(ctx, "foo", ""); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("duplicate name: err = %v, want errdef.ErrConflict", err)
		}
		if _, err := s.CreateRepository(ctx, " ", ""); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("blank name: err = %v, want errdef.ErrInvalid", err)
		}
		got, err := s.RepositoryByName(ctx, "foo")
		if err != nil || got.ID != r.ID {
			t.Fatalf("RepositoryByName = %v, %v", got, err)
		}
		newName, desc := "bar", "renamed"
		if _, err := s.UpdateRepository(ctx, r.ID, repository.RepositoryUpdate{Name: &newName, Description: &desc}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRepository(ctx, "foo", ""); err != nil {
			t.Fatalf("old name not free after rename: %v", err)
		}
		taken := "foo"
		if _, err := s.UpdateRepository(ctx, r.ID, repository.RepositoryUpdate{Name: &taken}); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("rename onto taken name: err = %v, want errdef.ErrConflict", err)
		}
		list, total, err := s.ListRepositories(ctx, repository.RepositoryFilter{Page: repository.Page{Limit: 1}})
		if err != nil || total != 2 || len(list) != 1 || list[0].Name != "bar" {
			t.Fatalf("ListRepositories limit 1 = %v total %d, %v; want [bar] of 2", list, total, err)
		}
		f := putImage(t, s, "img")
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: f.ids()}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRepository(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Repository(ctx, r.ID); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("after delete: err = %v, want errdef.ErrNotFound", err)
		}
		if _, err := s.Version(ctx, r.ID, 1); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("version after repository delete: err = %v, want errdef.ErrNotFound", err)
		}
		if _, err := s.ContentByID(ctx, f.manifest.ID); err != nil {
			t.Errorf("content went with the repository: %v", err)
		}
	})
}

func TestVersionsAreImmutableAndSummarised(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, _ := s.CreateRepository(ctx, "foo", "")
		a, b := putImage(t, s, "a"), putImage(t, s, "b")
		tagA, err := s.PutTag(ctx, "latest", a.manifest)
		if err != nil {
			t.Fatal(err)
		}
		v1, err := s.NewVersion(ctx, r.ID, repository.Change{Add: append(a.ids(), tagA.ID)})
		if err != nil {
			t.Fatal(err)
		}
		if v1.Number != 1 || v1.BaseVersion != nil {
			t.Fatalf("first version = %d base %v, want 1 base none", v1.Number, v1.BaseVersion)
		}
		sum, _ := s.Summary(ctx, r.ID, 1)
		want := map[content.Type]int{content.TypeManifest: 1, content.TypeBlob: 3, content.TypeManifestTag: 1}
		if fmt.Sprint(sum.Added) != fmt.Sprint(want) || fmt.Sprint(sum.Present) != fmt.Sprint(want) || len(sum.Removed) != 0 {
			t.Fatalf("v1 summary = %+v, want added = present = %v", sum, want)
		}

		// Moving the tag to b replaces it: one "latest" in the version.
		tagB, _ := s.PutTag(ctx, "latest", b.manifest)
		v2, err := s.NewVersion(ctx, r.ID, repository.Change{Add: append(b.ids(), tagB.ID)})
		if err != nil {
			t.Fatal(err)
		}
		tags, total, err := s.ListContent(ctx, repository.ContentFilter{Type: content.TypeManifestTag, In: &repository.VersionRef{RepositoryID: r.ID, Number: v2.Number}})
		if err != nil || total != 1 || len(tags) != 1 || tags[0].Digest != b.manifest.Digest {
			t.Fatalf("tags in v2 = %+v (total %d), %v; want one latest -> %s", tags, total, err, b.manifest.Digest)
		}
		sum, _ = s.Summary(ctx, r.ID, 2)
		if sum.Removed[content.TypeManifestTag] != 1 || sum.Present[content.TypeManifest] != 2 || sum.Present[content.TypeBlob] != 6 {
			t.Fatalf("v2 summary = %+v", sum)
		}

		// Version 1 did not change.
		if got := members(t, s, r.ID, 1); fmt.Sprint(got) != fmt.Sprint(sorted(append(a.ids(), tagA.ID))) {
			t.Errorf("v1 members changed to %v", got)
		}

		// Same content again: no version.
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: b.ids()}); !errors.Is(err, repository.ErrNoChange) {
			t.Errorf("re-adding present content: err = %v, want ErrNoChange", err)
		}
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: []int64{1 << 40}}); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("unknown content: err = %v, want errdef.ErrNotFound", err)
		}
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: a.ids()[:1], Remove: a.ids()[:1]}); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("add and remove the same unit: err = %v, want errdef.ErrInvalid", err)
		}
		if _, err := s.NewVersion(ctx, "no-such-repo", repository.Change{Add: a.ids()}); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("unknown repository: err = %v, want errdef.ErrNotFound", err)
		}
		latest, _ := s.LatestVersion(ctx, r.ID)
		if latest.Number != 2 {
			t.Errorf("failed changes moved latest to %d", latest.Number)
		}

		// Remove a's image: version 3; base-version restore from 1: version 4.
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Remove: a.ids()}); err != nil {
			t.Fatal(err)
		}
		one := 1
		v4, err := s.NewVersion(ctx, r.ID, repository.Change{Base: &one})
		if err != nil {
			t.Fatal(err)
		}
		if v4.BaseVersion == nil || *v4.BaseVersion != 1 {
			t.Errorf("v4 base = %v, want 1", v4.BaseVersion)
		}
		if got, want := members(t, s, r.ID, 4), members(t, s, r.ID, 1); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("v4 from base 1 = %v, want %v", got, want)
		}
	})
}

func sorted(ids []int64) []int64 {
	out := append([]int64(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func TestContentIsSharedAcrossRepositories(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		f1 := putImage(t, s, "same")
		f2 := putImage(t, s, "same")
		if fmt.Sprint(f1.ids()) != fmt.Sprint(f2.ids()) {
			t.Fatalf("storing the same image twice gave new units: %v vs %v", f1.ids(), f2.ids())
		}
		for _, name := range []string{"one", "two"} {
			r, _ := s.CreateRepository(ctx, name, "")
			if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: f1.ids()}); err != nil {
				t.Fatal(err)
			}
		}
		_, total, err := s.ListContent(ctx, repository.ContentFilter{Type: content.TypeBlob})
		if err != nil || total != 3 {
			t.Errorf("blobs stored = %d, %v; want 3 shared by both repositories", total, err)
		}
		m, err := s.ContentByDigest(ctx, content.TypeManifest, f1.manifest.Digest)
		if err != nil || string(m.Raw) != string(f1.manifest.Raw) {
			t.Errorf("manifest bytes not kept exactly: %v", err)
		}
		refs, err := s.Refs(ctx, m.ID)
		if err != nil || len(refs) != 3 || refs[0].Role != repository.RoleConfig || refs[2].ChildDigest != f1.blobs[2].Digest {
			t.Errorf("refs = %+v, %v; want config then 2 layers", refs, err)
		}
	})
}

func TestListContentFilters(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, _ := s.CreateRepository(ctx, "foo", "")
		a, b := putImage(t, s, "a"), putImage(t, s, "b")
		tag, _ := s.PutTag(ctx, "v1", a.manifest)
		s.NewVersion(ctx, r.ID, repository.Change{Add: append(a.ids(), tag.ID)})
		s.NewVersion(ctx, r.ID, repository.Change{Add: b.ids(), Remove: []int64{a.manifest.ID}})
		v := func(n int) *repository.VersionRef { return &repository.VersionRef{RepositoryID: r.ID, Number: n} }
		cases := []struct {
			name string
			f    repository.ContentFilter
			want int
		}{
			{"all blobs", repository.ContentFilter{Type: content.TypeBlob}, 6},
			{"in v1", repository.ContentFilter{In: v(1)}, 5},
			// Removing a's manifest took the tag naming it too.
			{"in v2", repository.ContentFilter{In: v(2)}, 7},
			{"manifests in v2", repository.ContentFilter{Type: content.TypeManifest, In: v(2)}, 1},
			{"added in v2", repository.ContentFilter{AddedIn: v(2)}, 4},
			{"removed in v2", repository.ContentFilter{RemovedIn: v(2)}, 2},
			{"in v1 and removed in v2", repository.ContentFilter{In: v(1), RemovedIn: v(2)}, 2},
			{"digest", repository.ContentFilter{Digest: b.manifest.Digest}, 1},
			{"digest in v1", repository.ContentFilter{Digest: b.manifest.Digest, In: v(1)}, 0},
			{"tag name", repository.ContentFilter{Name: "v1", In: v(1)}, 1},
			{"tag name in v2", repository.ContentFilter{Name: "v1", In: v(2)}, 0},
			{"media type", repository.ContentFilter{MediaType: content.MediaTypeOCIConfig, In: v(2)}, 2},
			{"version 0", repository.ContentFilter{In: v(0)}, 0},
		}
		for _, c := range cases {
			units, total, err := s.ListContent(ctx, c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if total != c.want || len(units) != c.want {
				t.Errorf("%s: %d units (total %d), want %d", c.name, len(units), total, c.want)
			}
		}
		// Pagination walks every unit once.
		seen := map[int64]bool{}
		for off := 0; off < 7; off += 3 {
			units, total, err := s.ListContent(ctx, repository.ContentFilter{In: v(2), Page: repository.Page{Limit: 3, Offset: off}})
			if err != nil || total != 7 {
				t.Fatalf("page at %d: total %d, %v", off, total, err)
			}
			for _, u := range units {
				if seen[u.ID] {
					t.Errorf("unit %d on two pages", u.ID)
				}
				seen[u.ID] = true
			}
		}
		if len(seen) != 7 {
			t.Errorf("pages covered %d units, want 7", len(seen))
		}
		if _, _, err := s.ListContent(ctx, repository.ContentFilter{Type: "docker.nope"}); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("unknown type: err = %v, want errdef.ErrInvalid", err)
		}
		if _, _, err := s.ListContent(ctx, repository.ContentFilter{Page: repository.Page{Offset: -1}}); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("negative offset: err = %v, want errdef.ErrInvalid", err)
		}
	})
}

// TestDeleteVersionKeepsOtherVersions makes random histories, deletes
// versions in random order, and checks that every remaining version still
// holds exactly what it held.
func TestDeleteVersionKeepsOtherVersions(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		var pool []int64
		for i := 0; i < 4; i++ {
			pool = append(pool, putImage(t, s, fmt.Sprint("p", i)).ids()...)
		}
		rng := rand.New(rand.NewSource(1))
		for trial := 0; trial < 6; trial++ {
			r, _ := s.CreateRepository(ctx, fmt.Sprint("r", trial), "")
			want := map[int][]int64{0: nil}
			for n := 1; n <= 6; n++ {
				var ch repository.Change
				live := map[int64]bool{}
				for _, id := range members(t, s, r.ID, n-1) {
					live[id] = true
				}
				for _, id := range pool {
					switch rng.Intn(4) {
					case 0:
						if !live[id] {
							ch.Add = append(ch.Add, id)
						}
					case 1:
						if live[id] {
							ch.Remove = append(ch.Remove, id)
						}
					}
				}
				v, err := s.NewVersion(ctx, r.ID, ch)
				if errors.Is(err, repository.ErrNoChange) {
					ch.Add = pool[:1]
					ch.Remove = nil
					if live[pool[0]] {
						ch.Add, ch.Remove = nil, pool[:1]
					}
					v, err = s.NewVersion(ctx, r.ID, ch)
				}
				if err != nil {
					t.Fatal(err)
				}
				want[v.Number] = members(t, s, r.ID, v.Number)
			}
			order := rng.Perm(7)
			for _, n := range order[:5] {
				if err := s.DeleteVersion(ctx, r.ID, n); err != nil {
					t.Fatalf("trial %d: delete version %d: %v", trial, n, err)
				}
				delete(want, n)
				for k, ids := range want {
					if got := members(t, s, r.ID, k); fmt.Sprint(got) != fmt.Sprint(ids) {
						t.Fatalf("trial %d: after deleting %d, version %d holds %v, want %v", trial, n, k, got, ids)
					}
				}
				checkSummaries(t, s, r.ID, want)
				if _, err := s.Version(ctx, r.ID, n); !errors.Is(err, errdef.ErrNotFound) {
					t.Fatalf("deleted version %d still found: %v", n, err)
				}
			}
			repo, _ := s.Repository(ctx, r.ID)
			maxLeft := -1
			for k := range want {
				maxLeft = max(maxLeft, k)
			}
			if repo.LatestVersion != maxLeft {
				t.Errorf("trial %d: latest = %d, want %d", trial, repo.LatestVersion, maxLeft)
			}
			// A new version after deletions gets a fresh number and builds on the latest.
			v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: pool})
			if err != nil && !errors.Is(err, repository.ErrNoChange) {
				t.Fatal(err)
			}
			if err == nil && v.Number != 7 {
				t.Errorf("trial %d: next version = %d, want 7 (numbers are never reused)", trial, v.Number)
			}
			for len(want) > 1 {
				for k := range want {
					if err := s.DeleteVersion(ctx, r.ID, k); err != nil {
						t.Fatal(err)
					}
					delete(want, k)
					break
				}
			}
		}
		r, _ := s.CreateRepository(ctx, "lonely", "")
		if err := s.DeleteVersion(ctx, r.ID, 0); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("deleting the only version: err = %v, want errdef.ErrConflict", err)
		}
	})
}

func TestConcurrentVersionsAreConsecutive(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, _ := s.CreateRepository(ctx, "busy", "")
		const n = 8
		imgs := make([]fixture, n)
		for i := range imgs {
			imgs[i] = putImage(t, s, fmt.Sprint("c", i))
		}
		var wg sync.WaitGroup
		nums := make([]int, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: imgs[i].ids()})
				errs[i] = err
				if err == nil {
					nums[i] = v.Number
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		sort.Ints(nums)
		for i, k := range nums {
			if k != i+1 {
				t.Fatalf("version numbers %v, want 1..%d", nums, n)
			}
		}
		if got := members(t, s, r.ID, n); len(got) != 4*n {
			t.Errorf("latest holds %d units, want %d", len(got), 4*n)
		}
	})
}

// checkSummaries checks each version's stored summary against its content
// and the content of the version before it.
func checkSummaries(t *testing.T, s *repository.Store, repoID string, want map[int][]int64) {
	t.Helper()
	var nums []int
	for k := range want {
		nums = append(nums, k)
	}
	sort.Ints(nums)
	var prev map[int64]bool
	for _, k := range nums {
		sum, err := s.Summary(context.Background(), repoID, k)
		if err != nil {
			t.Fatal(err)
		}
		cur := map[int64]bool{}
		for _, id := range want[k] {
			cur[id] = true
		}
		added, removed := 0, 0
		for id := range cur {
			if prev != nil && !prev[id] {
				added++
			}
		}
		for id := range prev {
			if !cur[id] {
				removed++
			}
		}
		total := func(m map[content.Type]int) (n int) {
			for _, c := range m {
				n += c
			}
			return n
		}
		if total(sum.Present) != len(cur) {
			t.Fatalf("version %d summary present %v, but it holds %d units", k, sum.Present, len(cur))
		}
		if prev != nil && (total(sum.Added) != added || total(sum.Removed) != removed) {
			t.Fatalf("version %d summary added %v removed %v; want %d added, %d removed since the version before", k, sum.Added, sum.Removed, added, removed)
		}
		prev = cur
	}
}

// A version something else points at (a pinned distribution, say) is not
// deleted, and the error says it is a conflict, not a failure.
func TestDeleteReferencedVersionIsConflict(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		if _, err := d.ExecContext(ctx, `CREATE TABLE pins (version_id VARCHAR(36) NOT NULL REFERENCES repository_versions(id))`); err != nil {
			t.Fatal(err)
		}
		r, _ := s.CreateRepository(ctx, "pinned", "")
		v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: putImage(t, s, "pin").ids()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `INSERT INTO pins (version_id) VALUES (?)`, v.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVersion(ctx, r.ID, v.Number); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("deleting a referenced version: err = %v, want errdef.ErrConflict", err)
		}
		if err := s.DeleteRepository(ctx, r.ID); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("deleting a repository with a referenced version: err = %v, want errdef.ErrConflict", err)
		}
		if got := members(t, s, r.ID, v.Number); len(got) != 4 {
			t.Errorf("after refused deletes version %d holds %d units, want 4", v.Number, len(got))
		}
	})
}

// A package built on this one holds repositories by redefining the view
// repository_holders over a table of its own; whatever Store deletes, it
// refuses what a holder serves, naming the holder, and deletes nothing.
func TestDeleteHeldIsConflict(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		for _, stmt := range []string{
			`CREATE TABLE mirrors (name VARCHAR(255) NOT NULL, repository_id VARCHAR(36) NOT NULL, version_id VARCHAR(36))`,
			`DROP VIEW repository_holders`,
			`CREATE VIEW repository_holders AS SELECT CAST('mirror' AS VARCHAR(32)) AS kind, name, repository_id, version_id FROM mirrors`,
		} {
			if _, err := d.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		r, _ := s.CreateRepository(ctx, "held", "")
		var versions []*repository.Version
		for _, seed := range []string{"h1", "h2", "h3"} {
			v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: putImage(t, s, seed).ids()})
			if err != nil {
				t.Fatal(err)
			}
			versions = append(versions, v)
		}
		hold := func(name string, version *repository.Version) {
			var id any
			if version != nil {
				id = version.ID
			}
			if _, err := d.ExecContext(ctx, `INSERT INTO mirrors (name, repository_id, version_id) VALUES (?, ?, ?)`, name, r.ID, id); err != nil {
				t.Fatal(err)
			}
		}
		hold("pin", versions[0])
		hold("follow", nil)
		refused := func(what string, err error, names ...string) {
			t.Helper()
			if !errors.Is(err, errdef.ErrConflict) {
				t.Errorf("%s: err = %v, want errdef.ErrConflict", what, err)
				return
			}
			for _, n := range names {
				if !strings.Contains(err.Error(), `mirror "`+n+`"`) {
					t.Errorf("%s: %q does not name mirror %q", what, err, n)
				}
			}
		}
		refused("delete the pinned version", s.DeleteVersion(ctx, r.ID, versions[0].Number), "pin")
		refused("delete the repository", s.DeleteRepository(ctx, r.ID), "pin", "follow")
		if got := members(t, s, r.ID, versions[0].Number); len(got) != 4 {
			t.Errorf("after refused deletes the pinned version holds %d units, want 4", len(got))
		}
		if hs, err := s.Holders(ctx, r.ID); err != nil || len(hs) != 2 || hs[0].Name != "follow" || hs[1].VersionID != versions[0].ID {
			t.Errorf("Holders = %+v, %v; want follow, then pin on version %d", hs, err, versions[0].Number)
		}
		// The latest version of a followed repository may go: the
		// follower then serves the version before.
		if err := s.DeleteVersion(ctx, r.ID, versions[2].Number); err != nil {
			t.Errorf("delete the latest version, followed: %v", err)
		}
		if _, err := d.ExecContext(ctx, `DELETE FROM mirrors WHERE version_id IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVersion(ctx, r.ID, versions[0].Number); err != nil {
			t.Errorf("delete a version once unpinned: %v", err)
		}
		refused("delete the repository, followed", s.DeleteRepository(ctx, r.ID), "follow")
		if _, err := d.ExecContext(ctx, `DELETE FROM mirrors`); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRepository(ctx, r.ID); err != nil {
			t.Errorf("delete the repository once unserved: %v", err)
		}
	})
}
