package ocilayout_test

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/remote/ocilayout"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/task"
)

// open returns a Mooring on db with blobs in a fresh directory.
func open(t *testing.T, db *bun.DB) *mooring.Mooring {
	t.Helper()
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mooring.New(context.Background(), db, blobs, mooring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// syncedRepo syncs images of both formats, a Docker list and an OCI index
// from an in-process upstream into a new repository named name, and
// returns the repository and upstream's tags.
func syncedRepo(t *testing.T, m *mooring.Mooring, name string) (*repository.Repository, map[string]digest.Digest) {
	t.Helper()
	ctx := context.Background()
	host := regtest.StartInProcess(t)
	tags := map[string]digest.Digest{}
	push := func(tag string, opts regtest.ImageOpts) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, host, "app", tag, opts)
		if err != nil {
			t.Fatal(err)
		}
		if tag != "" {
			tags[tag] = d.Digest
		}
		return d
	}
	push("v1", regtest.ImageOpts{Seed: "v1", Layers: 2})
	push("oci", regtest.ImageOpts{Seed: "oci", Format: regtest.OCI, LayerSize: 64 << 10})
	amd := push("", regtest.ImageOpts{Seed: "amd"})
	arm := push("", regtest.ImageOpts{Seed: "arm", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
	list, err := regtest.PushIndex(ctx, host, "app", "latest", regtest.Docker, amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	tags["latest"] = list.Digest
	o1 := push("", regtest.ImageOpts{Seed: "o1", Format: regtest.OCI})
	index, err := regtest.PushIndex(ctx, host, "app", "index", regtest.OCI, o1)
	if err != nil {
		t.Fatal(err)
	}
	tags["index"] = index.Digest
	repo, err := m.Repositories.CreateRepository(ctx, name, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, remote.New("up", "http://"+host, "app"), repo, remote.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	if repo, err = m.Repositories.Repository(ctx, repo.ID); err != nil {
		t.Fatal(err)
	}
	return repo, tags
}

// versionTags returns the tags of a repository's latest version.
func versionTags(t *testing.T, m *mooring.Mooring, repoID string) map[string]digest.Digest {
	t.Helper()
	ctx := context.Background()
	repo, err := m.Repositories.Repository(ctx, repoID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]digest.Digest{}
	v := repository.VersionRef{RepositoryID: repoID, Number: repo.LatestVersion}
	for c, err := range m.Repositories.Contents(ctx, repository.ContentFilter{In: &v}) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Type == content.TypeManifestTag || c.Type == content.TypeManifestListTag {
			out[c.Name] = c.Digest
		}
	}
	return out
}

// files returns every file under dir with its bytes' digest.
func files(t *testing.T, dir string) map[string]digest.Digest {
	t.Helper()
	out := map[string]digest.Digest{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = digest.FromBytes(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportImport: a version exported to a directory and to a tar, and
// imported into another store, keeps every digest and tag; exporting the
// imported version gives the same files, byte for byte.
func TestExportImport(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		src := open(t, db)
		repo, tags := syncedRepo(t, src, "src")
		out := t.TempDir()
		dir := filepath.Join(out, "layout")
		p := &task.Progress{}
		res, err := src.Export(ctx, repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}, dir, ocilayout.ExportOptions{Progress: p})
		if err != nil {
			t.Fatal(err)
		}
		if res.Tags != len(tags) || res.Manifests != 7 || res.Blobs == 0 || len(res.Skipped) != 0 {
			t.Errorf("export result %+v", res)
		}
		for _, r := range p.Reports() {
			if r.State != task.StateCompleted || r.Done != r.Total {
				t.Errorf("progress report %+v not complete", r)
			}
		}
		exported := files(t, dir)
		for name, d := range exported {
			if strings.HasPrefix(name, "blobs/sha256/") && digest.Digest("sha256:"+strings.TrimPrefix(name, "blobs/sha256/")) != d {
				t.Errorf("%s holds bytes of digest %s", name, d)
			}
		}
		if _, ok := exported["ingest"]; ok || exported["oci-layout"] == "" || exported["index.json"] == "" {
			t.Errorf("layout files %v", slices.Collect(maps.Keys(exported)))
		}
		tarPath := filepath.Join(out, "layout.tar")
		if _, err := src.Export(ctx, repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}, tarPath, ocilayout.ExportOptions{}); err != nil {
			t.Fatal(err)
		}

		// Into a store that holds none of the blobs, from the directory
		// and from the tar.
		for _, from := range []string{dir, tarPath} {
			dst := open(t, db)
			into, err := dst.Repositories.CreateRepository(ctx, "into-"+filepath.Base(from), "")
			if err != nil {
				t.Fatal(err)
			}
			ires, err := dst.Import(ctx, into.ID, from, ocilayout.ImportOptions{})
			if err != nil {
				t.Fatalf("import %s: %v", from, err)
			}
			if ires.Version == nil || ires.Version.Number != 1 || ires.BlobsStored != res.Blobs || ires.Tags != len(tags) {
				t.Errorf("import %s: %+v", from, ires)
			}
			if got := versionTags(t, dst, into.ID); !maps.Equal(got, tags) {
				t.Errorf("import %s: tags %v, upstream's %v", from, got, tags)
			}
			again := filepath.Join(out, "again-"+strings.ReplaceAll(filepath.Base(from), ".", "-"))
			if _, err := dst.Export(ctx, repository.VersionRef{RepositoryID: into.ID, Number: 1}, again, ocilayout.ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := files(t, again); !maps.Equal(got, exported) {
				t.Errorf("re-export of the import of %s differs from the export", from)
			}
			// A second import of the same layout changes nothing.
			if ires, err := dst.Import(ctx, into.ID, from, ocilayout.ImportOptions{}); err != nil || ires.Version != nil || ires.BlobsStored != 0 {
				t.Errorf("second import: %+v, %v", ires, err)
			}
		}

		// Selected tags only.
		some := filepath.Join(out, "some")
		sres, err := src.Export(ctx, repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}, some, ocilayout.ExportOptions{Tags: []string{"v1"}})
		if err != nil || sres.Tags != 1 || sres.Manifests != 1 || sres.Blobs != 3 {
			t.Errorf("export of v1: %+v, %v", sres, err)
		}
	})
}

// TestRefused: bad destinations, missing tags and tampered layouts are
// refused, leaving nothing half-made.
func TestRefused(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		m := open(t, db)
		repo, _ := syncedRepo(t, m, "src")
		v := repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}
		out := t.TempDir()
		full := filepath.Join(out, "full")
		os.MkdirAll(full, 0o755)
		os.WriteFile(filepath.Join(full, "keep"), []byte("mine"), 0o644)
		for _, c := range []struct {
			dst  string
			opts ocilayout.ExportOptions
			kind error
		}{
			{full, ocilayout.ExportOptions{}, errdef.ErrConflict},
			{filepath.Join(out, "no", "such", "dir"), ocilayout.ExportOptions{}, errdef.ErrInvalid},
			{filepath.Join(out, "x"), ocilayout.ExportOptions{Tags: []string{"nope"}}, errdef.ErrNotFound},
		} {
			if _, err := m.Export(ctx, v, c.dst, c.opts); !errors.Is(err, c.kind) {
				t.Errorf("export to %s %v: %v, want %v", c.dst, c.opts.Tags, err, c.kind)
			}
		}
		if _, err := m.Export(ctx, repository.VersionRef{RepositoryID: repo.ID, Number: 9}, filepath.Join(out, "y"), ocilayout.ExportOptions{}); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("export of a missing version: %v", err)
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := m.Export(canceled, v, filepath.Join(out, "z"), ocilayout.ExportOptions{}); err == nil {
			t.Error("a canceled export succeeded")
		}
		if entries, _ := os.ReadDir(out); len(entries) != 1 {
			t.Errorf("refused exports left %v", entries)
		}

		// A layout whose blob does not match its digest.
		good := filepath.Join(out, "good")
		res, err := m.Export(ctx, v, good, ocilayout.ExportOptions{Tags: []string{"v1"}})
		if err != nil {
			t.Fatal(err)
		}
		dst := open(t, db)
		into, _ := dst.Repositories.CreateRepository(ctx, "into", "")
		for name := range files(t, good) {
			if strings.HasPrefix(name, "blobs/") && res.Blobs > 0 {
				p := filepath.Join(good, name)
				raw, _ := os.ReadFile(p)
				if len(raw) < 1000 { // a layer, not a manifest or config
					continue
				}
				raw[0] ^= 0xff
				os.WriteFile(p, raw, 0o644)
				break
			}
		}
		_, err = dst.Import(ctx, into.ID, good, ocilayout.ImportOptions{})
		var fe *errdef.FieldError
		if !errors.As(err, &fe) || fe.Field != "path" || !strings.Contains(err.Error(), "digest") {
			t.Errorf("import of a tampered layout: %v", err)
		}
		if r, _ := dst.Repositories.Repository(ctx, into.ID); r.LatestVersion != 0 {
			t.Errorf("a failed import made version %d", r.LatestVersion)
		}
		for _, bad := range []string{filepath.Join(out, "missing"), full} {
			if _, err := dst.Import(ctx, into.ID, bad, ocilayout.ImportOptions{}); !errors.As(err, &fe) || fe.Field != "path" {
				t.Errorf("import of %s: %v", bad, err)
			}
		}
	})
}

func TestCheckPath(t *testing.T) {
	for _, c := range []struct {
		path    string
		allowed []string
		ok      bool
	}{
		{"/srv/layouts/a", nil, true},
		{"relative/a", nil, false},
		{"", nil, false},
		{"/srv/layouts/a.tar", []string{"/srv/layouts"}, true},
		{"/srv/layouts", []string{"/srv/layouts"}, false},
		{"/srv/layouts/../etc/passwd", []string{"/srv/layouts"}, false},
		{"/srv/layouts-other/a", []string{"/srv/layouts"}, false},
		{"/tmp/x", []string{"/srv/layouts", "/tmp"}, true},
	} {
		if _, err := ocilayout.CheckPath(c.path, c.allowed); (err == nil) != c.ok {
			t.Errorf("CheckPath(%q, %v) = %v, want ok %v", c.path, c.allowed, err, c.ok)
		}
	}
}

// TestSkopeoRoundTrip: a layout skopeo writes from a registry imports with
// upstream's digests, and a layout Mooring exports is one skopeo copies
// back to a registry, digests unchanged, both ways with --preserve-digests.
func TestSkopeoRoundTrip(t *testing.T) {
	skopeo, err := testproc.LookPath("skopeo")
	if err != nil {
		if os.Getenv(dbtest.EnvRequire) != "" {
			t.Fatal("MOORING_TEST_REQUIRE is set but skopeo is not installed (apt-get install skopeo)")
		}
		t.Skip("skopeo is not installed (apt-get install skopeo)")
	}
	ctx := context.Background()
	host := regtest.StartInProcess(t)
	want := map[string]digest.Digest{}
	for _, c := range []struct {
		tag  string
		opts regtest.ImageOpts
	}{{"docker", regtest.ImageOpts{Seed: "sk-docker", Layers: 2}}, {"oci", regtest.ImageOpts{Seed: "sk-oci", Format: regtest.OCI}}} {
		d, err := regtest.PushImage(ctx, host, "src", c.tag, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		want[c.tag] = d.Digest
	}
	o2, _ := regtest.PushImage(ctx, host, "src", "", regtest.ImageOpts{Seed: "sk-arm", Format: regtest.OCI, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
	o1, _ := regtest.PushImage(ctx, host, "src", "", regtest.ImageOpts{Seed: "sk-amd", Format: regtest.OCI})
	idx, err := regtest.PushIndex(ctx, host, "src", "index", regtest.OCI, o1, o2)
	if err != nil {
		t.Fatal(err)
	}
	want["index"] = idx.Digest

	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, skopeo, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	in := filepath.Join(dir, "in")
	for tag := range want {
		run("copy", "--all", "--preserve-digests", "--src-tls-verify=false", "docker://"+host+"/src:"+tag, "oci:"+in+":"+tag)
	}

	db := dbtest.Open(t, "sqlite")
	m := open(t, db)
	repo, _ := m.Repositories.CreateRepository(ctx, "skopeo", "")
	res, err := m.Import(ctx, repo.ID, in, ocilayout.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := versionTags(t, m, repo.ID); !maps.Equal(got, want) {
		t.Fatalf("imported tags %v, upstream's %v", got, want)
	}

	out := filepath.Join(dir, "out")
	if _, err := m.Export(ctx, repository.VersionRef{RepositoryID: repo.ID, Number: res.Version.Number}, out, ocilayout.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	for tag, d := range want {
		if tag == "docker" {
			// skopeo (containers/image) writes a Docker manifest into an
			// OCI layout under its own media type, as Mooring does, but
			// finds only OCI-typed entries when reading one, its own
			// included: the Docker image goes one way only.
			continue
		}
		run("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "oci:"+out+":"+tag, "docker://"+host+"/back:"+tag)
		got, err := regtest.Repository(host, "back")
		if err != nil {
			t.Fatal(err)
		}
		desc, err := got.Resolve(ctx, tag)
		if err != nil || desc.Digest != d {
			t.Errorf("skopeo copied %s back as %s (%v); upstream's is %s", tag, desc.Digest, err, d)
		}
	}
}

// TestCheckPathSymlink: a link inside an allowed directory does not lead
// out of it.
func TestCheckPathSymlink(t *testing.T) {
	allowed, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(allowed, "out")); err != nil {
		t.Skip(err)
	}
	if _, err := ocilayout.CheckPath(filepath.Join(allowed, "out", "layout"), []string{allowed}); err == nil {
		t.Error("a path through a link out of the allowed directory was allowed")
	}
	if _, err := ocilayout.CheckPath(filepath.Join(allowed, "in", "layout"), []string{allowed}); err != nil {
		t.Errorf("a path inside: %v", err)
	}
}
