package filesystem_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/storage/storagetest"
)

func newDriver(t testing.TB, root string) *filesystem.Driver {
	t.Helper()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newDriver(t, t.TempDir())
	})
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		dgst := alg.FromString("layout")
		if err := d.Put(t.Context(), dgst, 6, strings.NewReader("layout")); err != nil {
			t.Fatal(err)
		}
		hex := dgst.Encoded()
		b, err := os.ReadFile(filepath.Join(root, "blobs", string(alg), hex[:2], hex))
		if err != nil || string(b) != "layout" {
			t.Errorf("blob file for %s = %q, %v; want %q", dgst, b, err, "layout")
		}
	}
	// Neither successful nor failed puts leave temp files behind.
	if err := d.Put(t.Context(), digest.SHA256.FromString("a"), -1, strings.NewReader("b")); err == nil {
		t.Fatal("Put with the wrong digest succeeded")
	}
	if left := dirNames(t, filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("tmp holds %v after the puts, want nothing", left)
	}
}

func TestOpenIsOSFile(t *testing.T) {
	d := newDriver(t, t.TempDir())
	dgst := digest.SHA256.FromString("sendfile")
	if err := d.Put(t.Context(), dgst, -1, strings.NewReader("sendfile")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// http.ServeContent hands an *os.File to the connection's ReadFrom,
	// which uses sendfile; any wrapper would defeat that.
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File", rc)
	}
}

// A crash mid-Put leaves a temp file. It must not show as a blob, and New
// must clean it once it is old, but not a fresh one that may belong to a Put
// still running in another process.
func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	tmp := filepath.Join(root, "tmp")

	content := "complete bytes left behind by a crash before the rename"
	dgst := digest.SHA256.FromString(content)
	stale := filepath.Join(tmp, "sha256-"+dgst.Encoded()+"-123")
	fresh := filepath.Join(tmp, "sha256-"+dgst.Encoded()+"-456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-filesystem.StaleTempAge - time.Minute)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	if _, err := d.Stat(t.Context(), dgst); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("Stat of a blob only in tmp = %v, want ErrNotFound", err)
	}
	if got := list(t, d); len(got) != 0 {
		t.Errorf("List = %v, want nothing", got)
	}

	newDriver(t, root)
	if got, want := dirNames(t, tmp), []string{filepath.Base(fresh)}; !slices.Equal(got, want) {
		t.Errorf("tmp after New holds %v, want %v", got, want)
	}
}

// Stray files under blobs/ (a copy left by an operator, a half-made
// directory, an algorithm the driver does not know) are not blobs.
func TestListSkipsStrays(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	good := digest.SHA256.FromString("good")
	if err := d.Put(t.Context(), good, -1, strings.NewReader("good")); err != nil {
		t.Fatal(err)
	}
	hex := good.Encoded()
	other := digest.SHA256.FromString("other").Encoded()
	blobs := filepath.Join(root, "blobs")
	strays := []string{
		filepath.Join(blobs, "sha256", hex[:2], hex+".orig"),
		filepath.Join(blobs, "sha256", hex[:2], strings.ToUpper(other)),
		filepath.Join(blobs, "sha256", hex[:2], other), // Wrong prefix directory.
		filepath.Join(blobs, "sha256", "zz", other),
		filepath.Join(blobs, "sha256", other[:3], other),
		filepath.Join(blobs, "sha256", other), // Missing prefix directory.
		filepath.Join(blobs, "md5", other[:2], other),
		filepath.Join(blobs, "sha512", other[:2], other), // Too short for sha512.
	}
	for _, p := range strays {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stray"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A directory named like a blob.
	if err := os.Mkdir(filepath.Join(blobs, "sha256", other[:2]), 0o755); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(blobs, "sha256", other[:2], other), 0o755); err != nil {
		t.Fatal(err)
	}

	if got := list(t, d); !slices.Equal(got, []digest.Digest{good}) {
		t.Errorf("List = %v, want [%s]", got, good)
	}
	dirBlob := digest.NewDigestFromEncoded(digest.SHA256, other)
	if _, err := d.Stat(t.Context(), dirBlob); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("Stat of a directory named like a blob = %v, want ErrNotFound", err)
	}
}

// Put streams: what it allocates does not grow with the blob. Allocations
// are counted, not timed.
func TestPutMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 64 MiB put in short mode")
	}
	d := newDriver(t, t.TempDir())
	small, err := storagetest.PutAllocBytes(t.Context(), d, storagetest.Content{Seed: 1, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	large, err := storagetest.PutAllocBytes(t.Context(), d, storagetest.Content{Seed: 2, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("allocated %d bytes putting 1 MiB, %d putting 64 MiB", small, large)
	if large > size/64 || large > small+256<<10 {
		t.Errorf("Put of 64 MiB allocated %d bytes (1 MiB: %d); want about the same as for 1 MiB, far below the blob size", large, small)
	}
}

var benchSizes = []struct {
	name string
	size int64
}{
	{"1MiB", 1 << 20},
	{"64MiB", 64 << 20},
}

func BenchmarkPut(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			storagetest.BenchmarkPut(b, newDriver(b, b.TempDir()), s.size)
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			storagetest.BenchmarkOpen(b, newDriver(b, b.TempDir()), s.size)
		})
	}
}

// BenchmarkPutMemory shows, in B/op, that putting 256 MiB allocates a few
// tens of KiB: the buffer of the copy, not the blob.
func BenchmarkPutMemory(b *testing.B) {
	b.Run("256MiB", func(b *testing.B) {
		storagetest.BenchmarkPut(b, newDriver(b, b.TempDir()), 256<<20)
	})
}

func list(t *testing.T, d storage.Lister) []digest.Digest {
	t.Helper()
	var got []digest.Digest
	if err := d.List(t.Context(), func(info storage.Info) error {
		got = append(got, info.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestSweepLeftovers: a running process deletes the temp file of a Put
// that has written nothing for LeftoverAge, and leaves a fresh one.
func TestSweepLeftovers(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(root, "tmp", "sha256-abandoned"), filepath.Join(root, "tmp", "sha256-writing")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-filesystem.LeftoverAge - time.Minute)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, err := d.SweepLeftovers(context.Background())
	if err != nil || n != 1 {
		t.Errorf("SweepLeftovers = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the abandoned temp file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the temp file being written was deleted: %v", err)
	}
}
