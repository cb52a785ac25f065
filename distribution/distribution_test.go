package distribution_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/mooring-dev/mooring/storage/filesystem"
)

type fixture struct {
	repos *repository.Store
	dists *distribution.Store
	reg   *distribution.Registry
	blobs *filesystem.Driver
	repo  *repository.Repository
}

func setup(t *testing.T, db *bun.DB, ttl time.Duration) *fixture {
	t.Helper()
	ctx := context.Background()
	if err := distribution.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{repos: repository.NewStore(db), dists: distribution.NewStore(db), blobs: blobs}
	f.reg = distribution.NewRegistry(f.dists, f.repos, blobs, distribution.Options{TTL: ttl})
	if f.repo, err = f.repos.CreateRepository(ctx, "foo", ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// version adds an image tagged tag to a new version and returns the
// manifest bytes.
func (f *fixture) version(t *testing.T, tag string) []byte {
	t.Helper()
	ctx := context.Background()
	layer := []byte("layer of " + tag)
	d := digest.FromBytes(layer)
	if err := f.blobs.Put(ctx, d, int64(len(layer)), bytes.NewReader(layer)); err != nil {
		t.Fatal(err)
	}
	blobs, err := f.repos.PutBlobs(ctx, []content.Blob{{Digest: d, Size: int64(len(layer)), MediaType: content.MediaTypeOCILayerGzip}})
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[]}`,
		content.MediaTypeOCIManifest, content.MediaTypeOCIConfig, d, len(layer)))
	doc, err := content.Parse(content.MediaTypeOCIManifest, raw)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.repos.PutDocument(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := f.repos.PutTag(ctx, tag, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repos.NewVersion(ctx, f.repo.ID, repository.Change{Add: []int64{blobs[0].ID, m.ID, tg.ID}}); err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestBasePathRules(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, time.Second)
		ctx := context.Background()
		create := func(name, base string) error {
			return f.dists.Create(ctx, &distribution.Distribution{Name: name, BasePath: base, RepositoryID: &f.repo.ID})
		}
		for _, base := range []string{"a/b", "a_c", "x"} {
			if err := create(base, base); err != nil {
				t.Fatalf("%s: %v", base, err)
			}
		}
		for _, c := range []struct {
			base  string
			field string
			err   error
		}{
			{"a", "base_path", errdef.ErrConflict},
			{"a/b/c", "base_path", errdef.ErrConflict},
			{"x", "base_path", errdef.ErrConflict},
			{"a_c/d", "base_path", errdef.ErrConflict},
			{"A", "base_path", errdef.ErrInvalid},
			{"a/", "base_path", errdef.ErrInvalid},
			{"", "base_path", errdef.ErrInvalid},
		} {
			err := create("n-"+c.base, c.base)
			var fe *errdef.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, c.err) {
				t.Errorf("base path %q: %v, want a %s error about %s", c.base, err, c.err, c.field)
			}
		}
		for _, base := range []string{"a/bc", "axc/d", "ab"} {
			if err := create("n-"+base, base); err != nil {
				t.Errorf("%s: %v", base, err)
			}
		}
		if err := create("x", "y"); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("duplicate name: %v", err)
		}
	})
}

func TestRegistryFollowsAndPins(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		// A long TTL: changes made through the Store must show at once all
		// the same, and a new version only after the TTL.
		f := setup(t, db, time.Hour)
		ctx := context.Background()
		if _, err := f.reg.Resolve(ctx, "foo"); !errors.Is(err, errdef.ErrNameUnknown) {
			t.Fatalf("before any distribution: %v", err)
		}
		v1 := f.version(t, "one")
		d := &distribution.Distribution{Name: "foo", BasePath: "foo", RepositoryID: &f.repo.ID}
		if err := f.dists.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		view, err := f.reg.Resolve(ctx, "foo")
		if err != nil || view.Number != 1 {
			t.Fatalf("after create: %+v %v", view, err)
		}
		m, err := f.reg.Manifest(ctx, view, "one")
		if err != nil || !bytes.Equal(m.Raw, v1) || m.Digest != digest.FromBytes(v1) {
			t.Fatalf("manifest one: %v", err)
		}
		if byDigest, err := f.reg.Manifest(ctx, view, m.Digest.String()); err != nil || !bytes.Equal(byDigest.Raw, v1) {
			t.Fatalf("manifest one by digest: %v", err)
		}
		if b, err := f.reg.OpenBlob(ctx, view, m.Digest); err != nil || b.Size != int64(len(v1)) {
			t.Errorf("manifest one as a blob: %v", err)
		} else {
			b.Close()
		}
		f.version(t, "two")
		if view, _ := f.reg.Resolve(ctx, "foo"); view.Number != 1 {
			t.Errorf("within the TTL the cached version %d is served, want 1", view.Number)
		}
		// Pinning version 1 through the Store applies at once.
		v, err := f.repos.Version(ctx, f.repo.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		d.RepositoryID, d.RepositoryVersionID = nil, &v.ID
		if err := f.dists.Update(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := f.dists.DeleteVersion(ctx, f.repo.ID, 1); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("delete the pinned version: %v", err)
		}
		if err := f.dists.DeleteRepository(ctx, f.repo.ID); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("delete the served repository: %v", err)
		}
		d.RepositoryID, d.RepositoryVersionID = &f.repo.ID, nil
		if err := f.dists.Update(ctx, d); err != nil {
			t.Fatal(err)
		}
		view, _ = f.reg.Resolve(ctx, "foo")
		if view.Number != 2 {
			t.Fatalf("following again: version %d, want 2", view.Number)
		}
		tags, err := f.reg.Tags(ctx, view)
		if err != nil || fmt.Sprint(tags) != "[one two]" {
			t.Errorf("tags %v %v", tags, err)
		}
		if _, err := f.reg.Manifest(ctx, view, "three"); !errors.Is(err, errdef.ErrManifestUnknown) {
			t.Errorf("unknown tag: %v", err)
		}
		layer := digest.FromString("layer of two")
		b, err := f.reg.OpenBlob(ctx, view, layer)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if b.Size != int64(len("layer of two")) {
			t.Errorf("blob size %d", b.Size)
		}
		if _, err := f.reg.OpenBlob(ctx, &distribution.View{RepositoryID: f.repo.ID, Number: 1}, layer); !errors.Is(err, errdef.ErrBlobUnknown) {
			t.Errorf("blob of version 2 from version 1: %v", err)
		}
		if err := f.dists.Delete(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.Resolve(ctx, "foo"); !errors.Is(err, errdef.ErrNameUnknown) {
			t.Errorf("after delete: %v", err)
		}
		if err := f.dists.DeleteRepository(ctx, f.repo.ID); err != nil {
			t.Errorf("delete the repository once unserved: %v", err)
		}
	})
}

// Whichever call a program reaches for, repository.Store's or
// distribution.Store's, deleting what a distribution serves is refused with
// errdef.ErrConflict naming the distribution, and deletes nothing;
// deleting what no distribution serves works.
func TestDeleteServedIsConflict(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, time.Second)
		ctx := context.Background()
		for _, tag := range []string{"one", "two", "three"} {
			f.version(t, tag)
		}
		v1, err := f.repos.Version(ctx, f.repo.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		pinned := &distribution.Distribution{Name: "pinned", BasePath: "pinned", RepositoryVersionID: &v1.ID}
		follows := &distribution.Distribution{Name: "follows", BasePath: "follows", RepositoryID: &f.repo.ID}
		for _, d := range []*distribution.Distribution{pinned, follows} {
			if err := f.dists.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		// A repository.Store built on the database alone, knowing nothing
		// of distributions.
		repos := repository.NewStore(db)
		type call struct {
			name string
			del  func() error
		}
		for _, c := range []struct {
			what  string
			calls []call
			names []string
		}{
			{"the pinned version 1", []call{
				{"repository.Store.DeleteVersion", func() error { return repos.DeleteVersion(ctx, f.repo.ID, 1) }},
				{"distribution.Store.DeleteVersion", func() error { return f.dists.DeleteVersion(ctx, f.repo.ID, 1) }},
			}, []string{"pinned"}},
			{"the repository", []call{
				{"repository.Store.DeleteRepository", func() error { return repos.DeleteRepository(ctx, f.repo.ID) }},
				{"distribution.Store.DeleteRepository", func() error { return f.dists.DeleteRepository(ctx, f.repo.ID) }},
			}, []string{"pinned", "follows"}},
		} {
			for _, call := range c.calls {
				err := call.del()
				if !errors.Is(err, errdef.ErrConflict) {
					t.Errorf("%s of %s: err = %v, want errdef.ErrConflict", call.name, c.what, err)
					continue
				}
				for _, n := range c.names {
					if !strings.Contains(err.Error(), fmt.Sprintf("distribution %q", n)) {
						t.Errorf("%s of %s: %q does not name distribution %q", call.name, c.what, err, n)
					}
				}
			}
		}
		versions, total, err := repos.ListVersions(ctx, f.repo.ID, repository.Page{})
		if err != nil || total != 4 {
			t.Fatalf("after refused deletes: %d versions, %v; want 4", total, err)
		}
		for _, v := range versions {
			sum, err := repos.Summary(ctx, f.repo.ID, v.Number)
			if err != nil || sum.Present[content.TypeManifestTag] != v.Number {
				t.Errorf("after refused deletes version %d holds %v tags, %v; want %d", v.Number, sum.Present, err, v.Number)
			}
		}
		for _, base := range []string{"pinned", "follows"} {
			if _, err := f.reg.Resolve(ctx, base); err != nil {
				t.Errorf("after refused deletes %s: %v", base, err)
			}
		}

		// What is not served goes, through either Store. The latest
		// version of a followed repository is the followers' to lose: they
		// then serve the version before.
		if err := repos.DeleteVersion(ctx, f.repo.ID, 2); err != nil {
			t.Errorf("repository.Store.DeleteVersion of unserved version 2: %v", err)
		}
		if err := f.dists.DeleteVersion(ctx, f.repo.ID, 3); err != nil {
			t.Errorf("distribution.Store.DeleteVersion of the latest version, followed: %v", err)
		}
		if view, err := f.reg.Resolve(ctx, "follows"); err != nil || view.Number != 1 {
			t.Errorf("after deleting versions 2 and 3, follows serves %+v, %v; want version 1", view, err)
		}
		other, err := repos.CreateRepository(ctx, "other", "")
		if err != nil {
			t.Fatal(err)
		}
		f.repo = other
		f.version(t, "x")
		f.version(t, "y")
		if err := f.dists.DeleteVersion(ctx, other.ID, 2); err != nil {
			t.Errorf("distribution.Store.DeleteVersion of an unserved latest version: %v", err)
		}
		if err := f.dists.DeleteRepository(ctx, other.ID); err != nil {
			t.Errorf("distribution.Store.DeleteRepository of an unserved repository: %v", err)
		}
		if err := f.dists.Delete(ctx, pinned.ID); err != nil {
			t.Fatal(err)
		}
		if err := repos.DeleteVersion(ctx, *follows.RepositoryID, 1); err != nil {
			t.Errorf("repository.Store.DeleteVersion of version 1 once unpinned: %v", err)
		}
		if err := repos.DeleteRepository(ctx, *follows.RepositoryID); !errors.Is(err, errdef.ErrConflict) || !strings.Contains(err.Error(), `distribution "follows"`) {
			t.Errorf("repository.Store.DeleteRepository, followed: %v; want errdef.ErrConflict naming \"follows\"", err)
		}
		if err := f.dists.Delete(ctx, follows.ID); err != nil {
			t.Fatal(err)
		}
		if err := repos.DeleteRepository(ctx, *follows.RepositoryID); err != nil {
			t.Errorf("repository.Store.DeleteRepository once unserved: %v", err)
		}
	})
}

// A registry with no distributions has an empty catalog, which clients
// expect as {"repositories": []}, not null.
func TestEmptyCatalogIsEmptyList(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, time.Second)
		paths, err := f.reg.Catalog(context.Background(), 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if out, _ := json.Marshal(paths); string(out) != "[]" {
			t.Errorf("empty catalog encodes as %s, want []", out)
		}
	})
}
