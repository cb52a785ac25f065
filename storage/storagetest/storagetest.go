// Package storagetest is the conformance suite every storage.Driver runs, and
// helpers for testing and benchmarking drivers.
//
// A driver's test calls Run with a constructor that returns an empty store:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Driver {
//			d, err := filesystem.New(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return d
//		})
//	}
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// LargeSize is the size of the blob the "Large" subtest streams through the
// driver. The subtest is skipped with -short.
const LargeSize = 64 << 20

// Run runs the conformance suite against the drivers newDriver returns, one
// fresh, empty store per subtest. newDriver arranges any cleanup with
// t.Cleanup. Subtests run one after another.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d storage.Driver)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnknownSize", testUnknownSize},
		{"Empty", testEmpty},
		{"Seek", testSeek},
		{"DigestMismatch", testDigestMismatch},
		{"SizeMismatch", testSizeMismatch},
		{"ReaderError", testReaderError},
		{"PutExisting", testPutExisting},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"List", testList},
		{"ListStops", testListStops},
		{"InvalidDigest", testInvalidDigest},
		{"ConcurrentSame", testConcurrentSame},
		{"ConcurrentDifferent", testConcurrentDifferent},
		{"Canceled", testCanceled},
		{"Large", testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newDriver(t))
		})
	}
}

var algorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

func testRoundTrip(t *testing.T, d storage.Driver) {
	for i, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			data := Content{Seed: uint64(i), Size: 100_000}.Bytes()
			dgst := alg.FromBytes(data)
			before := time.Now()
			mustPut(t, d, dgst, int64(len(data)), bytes.NewReader(data))

			info, err := d.Stat(t.Context(), dgst)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Digest != dgst || info.Size != int64(len(data)) {
				t.Errorf("Stat = %s %d bytes, want %s %d bytes", info.Digest, info.Size, dgst, len(data))
			}
			// Allow for coarse filesystem and remote clocks.
			if info.ModTime.Before(before.Add(-time.Hour)) || info.ModTime.After(time.Now().Add(time.Hour)) {
				t.Errorf("Stat ModTime = %v, want about %v", info.ModTime, before)
			}
			if got := readAll(t, d, dgst); !bytes.Equal(got, data) {
				t.Errorf("Open read %d bytes differing from the %d put", len(got), len(data))
			}
		})
	}
}

func testUnknownSize(t *testing.T, d storage.Driver) {
	for i, alg := range algorithms {
		data := Content{Seed: uint64(10 + i), Size: 70_001}.Bytes()
		dgst := alg.FromBytes(data)
		mustPut(t, d, dgst, -1, bytes.NewReader(data))
		info, err := d.Stat(t.Context(), dgst)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if info.Size != int64(len(data)) {
			t.Errorf("Stat size = %d, want %d", info.Size, len(data))
		}
		if got := readAll(t, d, dgst); !bytes.Equal(got, data) {
			t.Errorf("%s: Open read bytes differing from those put", alg)
		}
	}
}

func testEmpty(t *testing.T, d storage.Driver) {
	for _, size := range []int64{0, -1} {
		for _, alg := range algorithms {
			dgst := alg.FromBytes(nil)
			mustPut(t, d, dgst, size, strings.NewReader(""))
			info, err := d.Stat(t.Context(), dgst)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Size != 0 {
				t.Errorf("Stat size = %d, want 0", info.Size)
			}
			if got := readAll(t, d, dgst); len(got) != 0 {
				t.Errorf("Open read %d bytes, want 0", len(got))
			}
			if got := listAll(t, d); got[dgst].Digest != dgst || got[dgst].Size != 0 {
				t.Errorf("List = %v, want %s with size 0 in it", got, dgst)
			}
			if err := d.Delete(t.Context(), dgst); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
	}
}

func testSeek(t *testing.T, d storage.Driver) {
	data := Content{Seed: 20, Size: 10_000}.Bytes()
	dgst := digest.SHA256.FromBytes(data)
	mustPut(t, d, dgst, int64(len(data)), bytes.NewReader(data))

	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()

	size := int64(len(data))
	steps := []struct {
		offset  int64
		whence  int
		wantPos int64
		read    int
	}{
		{0, io.SeekCurrent, 0, 10},
		{100, io.SeekStart, 100, 50},
		{25, io.SeekCurrent, 175, 1000},
		{-500, io.SeekCurrent, 675, 1},
		{-300, io.SeekEnd, size - 300, 299},
		{0, io.SeekCurrent, size - 1, 1},
		{0, io.SeekStart, 0, 1},
		{size - 1, io.SeekStart, size - 1, 1},
		{-1, io.SeekEnd, size - 1, 1},
		{0, io.SeekEnd, size, 0},
	}
	for _, s := range steps {
		pos, err := rc.Seek(s.offset, s.whence)
		if err != nil {
			t.Fatalf("Seek(%d, %d): %v", s.offset, s.whence, err)
		}
		if pos != s.wantPos {
			t.Fatalf("Seek(%d, %d) = %d, want %d", s.offset, s.whence, pos, s.wantPos)
		}
		buf := make([]byte, s.read)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatalf("reading %d bytes at %d: %v", s.read, pos, err)
		}
		if want := data[pos : pos+int64(s.read)]; !bytes.Equal(buf, want) {
			t.Errorf("%d bytes at %d differ from those put", s.read, pos)
		}
	}

	// Read to EOF from the middle.
	if _, err := rc.Seek(size/2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading to EOF: %v", err)
	}
	if !bytes.Equal(rest, data[size/2:]) {
		t.Errorf("read %d bytes to EOF, differing from the %d after offset %d", len(rest), size-size/2, size/2)
	}
	if n, err := rc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at EOF = %d, %v; want 0, io.EOF", n, err)
	}

	// io.Seeker: seeking before the start is an error.
	if _, err := rc.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek(-1, io.SeekStart) succeeded, want an error")
	}
}

func testDigestMismatch(t *testing.T, d storage.Driver) {
	for _, alg := range algorithms {
		for _, size := range []int64{1000, -1} {
			data := Content{Seed: 30, Size: 1000}.Bytes()
			actual := alg.FromBytes(data)
			claimed := alg.FromBytes(Content{Seed: 31, Size: 1000}.Bytes())
			err := d.Put(t.Context(), claimed, size, bytes.NewReader(data))
			if !errors.Is(err, storage.ErrDigestMismatch) {
				t.Errorf("%s size %d: Put = %v, want ErrDigestMismatch", alg, size, err)
			}
			assertAbsent(t, d, claimed)
			assertAbsent(t, d, actual)
		}
	}
}

func testSizeMismatch(t *testing.T, d storage.Driver) {
	data := Content{Seed: 40, Size: 1000}.Bytes()
	for _, alg := range algorithms {
		dgst := alg.FromBytes(data)
		for _, tc := range []struct {
			name string
			size int64
		}{
			{"short", 1001},
			{"long", 999},
			{"much longer", 1},
			{"nonempty for zero", 0},
		} {
			err := d.Put(t.Context(), dgst, tc.size, bytes.NewReader(data))
			if !errors.Is(err, storage.ErrSizeMismatch) {
				t.Errorf("%s %s: Put of %d bytes with size %d = %v, want ErrSizeMismatch", alg, tc.name, len(data), tc.size, err)
			}
			assertAbsent(t, d, dgst)
		}
		// Empty content put with a positive size is short too.
		empty := alg.FromBytes(nil)
		if err := d.Put(t.Context(), empty, 1, strings.NewReader("")); !errors.Is(err, storage.ErrSizeMismatch) {
			t.Errorf("%s: Put of no bytes with size 1 = %v, want ErrSizeMismatch", alg, err)
		}
		assertAbsent(t, d, empty)
	}
}

var errBoom = errors.New("storagetest: reader failed")

func testReaderError(t *testing.T, d storage.Driver) {
	c := Content{Seed: 50, Size: 200_000}
	dgst := c.Digest(digest.SHA256)
	r := io.MultiReader(io.LimitReader(c.Reader(), 100_000), iotest.ErrReader(errBoom))
	err := d.Put(t.Context(), dgst, c.Size, r)
	if !errors.Is(err, errBoom) {
		t.Errorf("Put from a failing reader = %v, want it to wrap the reader's error", err)
	}
	assertAbsent(t, d, dgst)
}

func testPutExisting(t *testing.T, d storage.Driver) {
	data := Content{Seed: 60, Size: 5000}.Bytes()
	dgst := digest.SHA256.FromBytes(data)
	mustPut(t, d, dgst, int64(len(data)), bytes.NewReader(data))
	mustPut(t, d, dgst, int64(len(data)), bytes.NewReader(data))
	mustPut(t, d, dgst, -1, bytes.NewReader(data))
	if got := readAll(t, d, dgst); !bytes.Equal(got, data) {
		t.Error("Open read bytes differing from those put")
	}
	if got := listAll(t, d); len(got) != 1 {
		t.Errorf("List = %v, want just %s", got, dgst)
	}
}

func testMissing(t *testing.T, d storage.Driver) {
	dgst := digest.SHA256.FromString("never put")
	ctx := t.Context()
	_, err := d.Stat(ctx, dgst)
	checkNotFound(t, "Stat", dgst, err)
	rc, err := d.Open(ctx, dgst)
	if err == nil {
		rc.Close()
	}
	checkNotFound(t, "Open", dgst, err)
	checkNotFound(t, "Delete", dgst, d.Delete(ctx, dgst))
	if got := listAll(t, d); len(got) != 0 {
		t.Errorf("List of an empty store = %v, want nothing", got)
	}
}

func testDelete(t *testing.T, d storage.Driver) {
	keep := Content{Seed: 70, Size: 3000}.Bytes()
	gone := Content{Seed: 71, Size: 3000}.Bytes()
	keepD, goneD := digest.SHA256.FromBytes(keep), digest.SHA512.FromBytes(gone)
	mustPut(t, d, keepD, -1, bytes.NewReader(keep))
	mustPut(t, d, goneD, -1, bytes.NewReader(gone))

	if err := d.Delete(t.Context(), goneD); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertAbsent(t, d, goneD)
	checkNotFound(t, "second Delete", goneD, d.Delete(t.Context(), goneD))
	if got := readAll(t, d, keepD); !bytes.Equal(got, keep) {
		t.Error("Delete of one blob disturbed another")
	}
	// A deleted blob can be put again.
	mustPut(t, d, goneD, int64(len(gone)), bytes.NewReader(gone))
	if got := readAll(t, d, goneD); !bytes.Equal(got, gone) {
		t.Error("blob put after Delete reads back wrong")
	}
}

func testList(t *testing.T, d storage.Driver) {
	want := map[digest.Digest]int64{}
	var deleted []digest.Digest
	for i := range 9 {
		alg := algorithms[i%len(algorithms)]
		c := Content{Seed: uint64(80 + i), Size: int64(i * 1000)}
		dgst := c.Digest(alg)
		mustPut(t, d, dgst, c.Size, c.Reader())
		want[dgst] = c.Size
		if i%4 == 1 {
			deleted = append(deleted, dgst)
		}
	}
	for _, dgst := range deleted {
		if err := d.Delete(t.Context(), dgst); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		delete(want, dgst)
	}
	// A failed put must not show up either.
	bad := digest.SHA256.FromString("not what is put")
	if err := d.Put(t.Context(), bad, -1, strings.NewReader("something else")); err == nil {
		t.Fatal("Put with the wrong digest succeeded")
	}

	got := map[digest.Digest]int64{}
	err := d.List(t.Context(), func(info storage.Info) error {
		if _, dup := got[info.Digest]; dup {
			t.Errorf("List gave %s twice", info.Digest)
		}
		got[info.Digest] = info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("List gave\n%v\nwant\n%v", sortedKeys(got), sortedKeys(want))
	}
}

func testListStops(t *testing.T, d storage.Driver) {
	for i := range 3 {
		c := Content{Seed: uint64(90 + i), Size: 10}
		mustPut(t, d, c.Digest(digest.SHA256), c.Size, c.Reader())
	}
	stop := errors.New("stop")
	calls := 0
	err := d.List(t.Context(), func(storage.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List = %v, want the error fn returned", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after returning an error, want once", calls)
	}
}

func testInvalidDigest(t *testing.T, d storage.Driver) {
	valid := digest.SHA256.FromString("x")
	hex64 := valid.Encoded()
	invalid := []digest.Digest{
		"",
		"sha256",
		"sha256:",
		"sha256:abc",
		digest.Digest("sha256:" + strings.ToUpper(hex64)),
		digest.Digest("sha256:" + hex64 + "0"),
		digest.Digest("sha256:" + strings.Repeat("g", 64)),
		digest.Digest("sha256:../../" + hex64[6:]),
		digest.Digest("sha256:" + hex64[:62] + "/a"),
		digest.Digest(hex64),
		digest.Digest("md5:" + hex64[:32]),
		digest.Digest("blake3:" + hex64),
		digest.SHA384.FromString("x"), // Well-formed but not accepted.
		digest.Digest("sha512:" + hex64),
		digest.Digest(" " + string(valid)),
	}
	ctx := t.Context()
	for _, dgst := range invalid {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, storage.ErrInvalidDigest) {
				t.Errorf("%s(%q) = %v, want ErrInvalidDigest", op, dgst, err)
			}
		}
		_, err := d.Stat(ctx, dgst)
		check("Stat", err)
		rc, err := d.Open(ctx, dgst)
		if err == nil {
			rc.Close()
		}
		check("Open", err)
		check("Put", d.Put(ctx, dgst, 1, strings.NewReader("x")))
		check("Delete", d.Delete(ctx, dgst))
	}
	if got := listAll(t, d); len(got) != 0 {
		t.Errorf("List after rejected puts = %v, want nothing", got)
	}
}

// concurrency is how many goroutines the concurrency subtests run.
const concurrency = 8

func testConcurrentSame(t *testing.T, d storage.Driver) {
	c := Content{Seed: 100, Size: 1 << 20}
	dgst := c.Digest(digest.SHA256)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			size := c.Size
			if i%2 == 1 {
				size = -1
			}
			if err := d.Put(t.Context(), dgst, size, c.Reader()); err != nil {
				t.Errorf("Put %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	assertContent(t, d, dgst, c)
	if got := listAll(t, d); len(got) != 1 {
		t.Errorf("List = %v, want just %s", got, dgst)
	}
}

func testConcurrentDifferent(t *testing.T, d storage.Driver) {
	blobs := make(map[digest.Digest]Content)
	for i := range concurrency {
		c := Content{Seed: uint64(110 + i), Size: 256<<10 + int64(i)}
		blobs[c.Digest(algorithms[i%len(algorithms)])] = c
	}
	var wg sync.WaitGroup
	for dgst, c := range blobs {
		wg.Go(func() {
			if err := d.Put(t.Context(), dgst, c.Size, c.Reader()); err != nil {
				t.Errorf("Put %s: %v", dgst, err)
			}
		})
	}
	wg.Wait()
	for dgst, c := range blobs {
		assertContent(t, d, dgst, c)
	}
	got := listAll(t, d)
	if !slices.Equal(sortedKeys(got), sortedKeys(blobs)) {
		t.Errorf("List gave %v, want %v", sortedKeys(got), sortedKeys(blobs))
	}
}

func testCanceled(t *testing.T, d storage.Driver) {
	c := Content{Seed: 120, Size: 1 << 20}
	dgst := c.Digest(digest.SHA256)

	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := d.Put(ctx, dgst, c.Size, c.Reader())
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put with a canceled context = %v, want context.Canceled", err)
		}
		assertAbsent(t, d, dgst)
	})

	// The reader cancels once it has given half the blob and goes on
	// giving the rest, as a client that hangs up while its bytes are still
	// buffered: Put must notice between reads.
	t.Run("between reads", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &cancelingReader{r: c.Reader(), after: c.Size / 2, cancel: cancel}
		err := d.Put(ctx, dgst, c.Size, r)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put canceled midway = %v, want context.Canceled", err)
		}
		assertAbsent(t, d, dgst)
	})

	// The reader blocks until the context is done, as a network body does
	// while its peer is silent, and the context is canceled from outside.
	t.Run("blocked read", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		blocked := make(chan struct{})
		r := io.MultiReader(io.LimitReader(c.Reader(), c.Size/2), &blockingReader{ctx: ctx, blocked: blocked})
		go func() {
			<-blocked
			cancel()
		}()
		err := d.Put(ctx, dgst, c.Size, r)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put canceled while blocked = %v, want context.Canceled", err)
		}
		assertAbsent(t, d, dgst)
	})

	// The same blob still goes in afterwards.
	mustPut(t, d, dgst, c.Size, c.Reader())
	assertContent(t, d, dgst, c)
}

func testLarge(t *testing.T, d storage.Driver) {
	if testing.Short() {
		t.Skipf("skipping the %d MiB blob in short mode", LargeSize>>20)
	}
	c := Content{Seed: 130, Size: LargeSize}
	dgst := c.Digest(digest.SHA256)
	mustPut(t, d, dgst, c.Size, c.Reader())
	info, err := d.Stat(t.Context(), dgst)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Size != c.Size {
		t.Errorf("Stat size = %d, want %d", info.Size, c.Size)
	}
	assertContent(t, d, dgst, c)
}

// mustPut puts r as dgst and fails the test on error.
func mustPut(t *testing.T, d storage.Driver, dgst digest.Digest, size int64, r io.Reader) {
	t.Helper()
	if err := d.Put(t.Context(), dgst, size, r); err != nil {
		t.Fatalf("Put %s: %v", dgst, err)
	}
}

// readAll returns the whole of blob dgst.
func readAll(t *testing.T, d storage.Driver, dgst digest.Digest) []byte {
	t.Helper()
	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatalf("Open %s: %v", dgst, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", dgst, err)
	}
	return b
}

// assertContent checks, streaming, that blob dgst holds c.
func assertContent(t *testing.T, d storage.Driver, dgst digest.Digest, c Content) {
	t.Helper()
	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatalf("Open %s: %v", dgst, err)
	}
	defer rc.Close()
	v := dgst.Verifier()
	n, err := io.Copy(v, rc)
	if err != nil {
		t.Fatalf("reading %s: %v", dgst, err)
	}
	if n != c.Size || !v.Verified() {
		t.Errorf("%s reads back as %d bytes not matching its digest, want %d bytes that do", dgst, n, c.Size)
	}
}

// assertAbsent checks that blob dgst is nowhere to be seen.
func assertAbsent(t *testing.T, d storage.Driver, dgst digest.Digest) {
	t.Helper()
	// The context of the test, not of the Put, which may be canceled.
	ctx := t.Context()
	_, err := d.Stat(ctx, dgst)
	checkNotFound(t, "Stat", dgst, err)
	rc, err := d.Open(ctx, dgst)
	if err == nil {
		rc.Close()
	}
	checkNotFound(t, "Open", dgst, err)
	if _, ok := listAll(t, d)[dgst]; ok {
		t.Errorf("List shows %s, which should not be stored", dgst)
	}
}

// checkNotFound checks that err wraps errdef.ErrNotFound and names dgst.
func checkNotFound(t *testing.T, op string, dgst digest.Digest, err error) {
	t.Helper()
	if !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("%s %s = %v, want ErrNotFound", op, dgst, err)
		return
	}
	if !strings.Contains(err.Error(), string(dgst)) {
		t.Errorf("%s error %q does not name the digest %s", op, err, dgst)
	}
}

// listAll returns every blob List reports.
func listAll(t *testing.T, d storage.Driver) map[digest.Digest]storage.Info {
	t.Helper()
	got := map[digest.Digest]storage.Info{}
	if err := d.List(t.Context(), func(info storage.Info) error {
		got[info.Digest] = info
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

func sortedKeys[V any](m map[digest.Digest]V) []digest.Digest {
	return slices.Sorted(maps.Keys(m))
}

// cancelingReader calls cancel once it has given more than after bytes, and
// keeps reading.
type cancelingReader struct {
	r      io.Reader
	after  int64
	n      int64
	cancel context.CancelFunc
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.after {
		c.cancel()
	}
	return n, err
}

// blockingReader closes blocked on its first Read and then waits for ctx to
// be done, returning its error, as a request body tied to ctx would.
type blockingReader struct {
	ctx     context.Context
	blocked chan struct{}
	once    sync.Once
}

func (b *blockingReader) Read([]byte) (int, error) {
	b.once.Do(func() { close(b.blocked) })
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}
