package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/s3"
	"github.com/mooring-dev/mooring/storage/s3/s3test"
	"github.com/mooring-dev/mooring/storage/storagetest"
)

// prefixes numbers the prefixes handed out by withPrefix, so that drivers
// sharing one server start empty.
var prefixes atomic.Int64

// withPrefix returns cfg with a prefix no other test uses.
func withPrefix(cfg s3.Config) s3.Config {
	cfg.Prefix = fmt.Sprintf("store-%d/sub", prefixes.Add(1))
	return cfg
}

func newDriver(t testing.TB, cfg s3.Config) *s3.Driver {
	t.Helper()
	d, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// TestConformance runs the suite with the smallest part size S3 allows, so
// that the 64 MiB blob goes up in 13 parts.
func TestConformance(t *testing.T) {
	cfg := s3test.Start(t)
	cfg.PartSize = s3.MinPartSize
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newDriver(t, withPrefix(cfg))
	})
}

// TestConformanceDefaults runs the suite with the default part size and no
// prefix, in a server of its own so that the bucket starts empty.
func TestConformanceDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("one conformance run is enough in short mode")
	}
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newDriver(t, s3test.Start(t))
	})
}

// keys returns every key in the bucket under prefix, and the keys of the
// incomplete multipart uploads there.
func keys(t *testing.T, cfg s3.Config, prefix string) (objects, uploads []string) {
	t.Helper()
	client, err := s3test.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for obj := range client.ListObjectsIter(t.Context(), cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("listing the bucket: %v", obj.Err)
		}
		objects = append(objects, obj.Key)
	}
	res, err := minio.Core{Client: client}.ListMultipartUploads(t.Context(), cfg.Bucket, prefix, "", "", "", 1000)
	if err != nil {
		t.Fatalf("listing multipart uploads: %v", err)
	}
	for _, u := range res.Uploads {
		uploads = append(uploads, u.Key+" "+u.UploadID)
	}
	return objects, uploads
}

func TestLayout(t *testing.T) {
	cfg := s3test.Start(t)
	cfg.Prefix = "/a/b/"
	d := newDriver(t, cfg)
	var want []string
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		dgst := alg.FromString("layout")
		if err := d.Put(t.Context(), dgst, 6, strings.NewReader("layout")); err != nil {
			t.Fatal(err)
		}
		hex := dgst.Encoded()
		want = append(want, "a/b/blobs/"+string(alg)+"/"+hex[:2]+"/"+hex)
	}
	objects, uploads := keys(t, cfg, "")
	slices.Sort(want)
	if !slices.Equal(objects, want) || len(uploads) != 0 {
		t.Errorf("bucket holds %v and uploads %v, want %v and no uploads", objects, uploads, want)
	}
}

var errBoom = errors.New("reader failed")

// A Put that fails after parts have gone up leaves nothing behind: no
// object and no incomplete upload.
func TestFailedMultipartLeavesNothing(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	cfg.PartSize = s3.MinPartSize
	d := newDriver(t, cfg)
	c := storagetest.Content{Seed: 1, Size: 3*s3.MinPartSize + 12345}
	dgst := c.Digest(digest.SHA256)
	other := storagetest.Content{Seed: 2, Size: c.Size}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		size  int64
		r     io.Reader
		check func(error) bool
	}{
		{"reader error", t.Context(), c.Size,
			io.MultiReader(io.LimitReader(c.Reader(), 2*s3.MinPartSize+1), iotest.ErrReader(errBoom)),
			func(err error) bool { return errors.Is(err, errBoom) }},
		{"digest mismatch", t.Context(), other.Size, other.Reader(),
			func(err error) bool { return errors.Is(err, storage.ErrDigestMismatch) }},
		{"digest mismatch unknown size", t.Context(), -1, other.Reader(),
			func(err error) bool { return errors.Is(err, storage.ErrDigestMismatch) }},
		{"too long", t.Context(), c.Size - 1, c.Reader(),
			func(err error) bool { return errors.Is(err, storage.ErrSizeMismatch) }},
		{"too short", t.Context(), c.Size + 1, c.Reader(),
			func(err error) bool { return errors.Is(err, storage.ErrSizeMismatch) }},
		{"canceled", ctx, c.Size, &cancelAfter{r: c.Reader(), n: 2*s3.MinPartSize + 1, cancel: cancel},
			func(err error) bool { return errors.Is(err, context.Canceled) }},
	}
	for _, tc := range tests {
		err := d.Put(tc.ctx, dgst, tc.size, tc.r)
		if !tc.check(err) {
			t.Errorf("%s: Put = %v", tc.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), string(dgst)) {
			t.Errorf("%s: error %q does not name the digest", tc.name, err)
		}
	}
	objects, uploads := keys(t, cfg, "")
	if len(objects) != 0 || len(uploads) != 0 {
		t.Errorf("after failed puts the bucket holds %v and uploads %v, want nothing", objects, uploads)
	}
	if _, err := d.Stat(t.Context(), dgst); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("Stat after failed puts = %v, want ErrNotFound", err)
	}
	// The blob still goes in, and only it is left.
	if err := d.Put(t.Context(), dgst, -1, c.Reader()); err != nil {
		t.Fatal(err)
	}
	objects, uploads = keys(t, cfg, "")
	if len(objects) != 1 || len(uploads) != 0 {
		t.Errorf("after a good put the bucket holds %v and uploads %v, want one object", objects, uploads)
	}
}

// cancelAfter cancels once n bytes have been read, and keeps reading.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		c.cancel()
	}
	return n, err
}

// A blob over S3's 5 MiB part minimum, put with and without its size,
// reads back whole and in ranges through http.ServeContent, as the registry
// serves it.
func TestServeContentRanges(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	cfg.PartSize = s3.MinPartSize
	d := newDriver(t, cfg)
	c := storagetest.Content{Seed: 3, Size: s3.MinPartSize + 777}
	data := c.Bytes()
	dgst := digest.SHA512.FromBytes(data)
	if err := d.Put(t.Context(), dgst, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, err := d.Open(r.Context(), dgst)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer rc.Close()
		http.ServeContent(w, r, "", time.Time{}, rc)
	}))
	defer srv.Close()

	size := int64(len(data))
	for _, tc := range []struct {
		rng        string
		status     int
		start, end int64 // of data, end exclusive
	}{
		{"", http.StatusOK, 0, size},
		{"bytes=0-0", http.StatusPartialContent, 0, 1},
		{"bytes=100-199", http.StatusPartialContent, 100, 200},
		{fmt.Sprintf("bytes=%d-", s3.MinPartSize-10), http.StatusPartialContent, s3.MinPartSize - 10, size},
		{"bytes=-1000", http.StatusPartialContent, size - 1000, size},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status || !bytes.Equal(body, data[tc.start:tc.end]) {
			t.Errorf("Range %q: %s with %d bytes, want %d with bytes %d-%d", tc.rng, resp.Status, len(body), tc.status, tc.start, tc.end-1)
		}
	}
}

func TestOpenAfterClose(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	d := newDriver(t, cfg)
	dgst := digest.SHA256.FromString("closed")
	if err := d.Put(t.Context(), dgst, -1, strings.NewReader("closed")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
	// Deleted after Open: the lazy GET reports the blob missing.
	rc, err = d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := d.Delete(t.Context(), dgst); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("Read of a blob deleted after Open = %v, want ErrNotFound", err)
	}
}

func TestRedirectURL(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	d := newDriver(t, cfg)
	var r storage.Redirector = d
	data := storagetest.Content{Seed: 4, Size: 4321}.Bytes()
	dgst := digest.SHA256.FromBytes(data)
	if err := d.Put(t.Context(), dgst, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	u, err := r.RedirectURL(t.Context(), dgst, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET of the redirect URL: %s with %d bytes, want 200 with the %d bytes put", resp.Status, len(body), len(data))
	}

	missing := digest.SHA256.FromString("missing")
	if _, err := r.RedirectURL(t.Context(), missing, time.Minute); !errors.Is(err, errdef.ErrNotFound) || !strings.Contains(err.Error(), string(missing)) {
		t.Errorf("RedirectURL of a missing blob = %v, want ErrNotFound naming it", err)
	}
	if _, err := r.RedirectURL(t.Context(), "sha256:nope", time.Minute); !errors.Is(err, storage.ErrInvalidDigest) {
		t.Errorf("RedirectURL of a bad digest = %v, want ErrInvalidDigest", err)
	}
}

// Keys under the prefix that the driver did not make are not blobs.
func TestListSkipsStrays(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	d := newDriver(t, cfg)
	good := digest.SHA256.FromString("good")
	if err := d.Put(t.Context(), good, -1, strings.NewReader("good")); err != nil {
		t.Fatal(err)
	}
	hex := good.Encoded()
	other := digest.SHA256.FromString("other").Encoded()
	root := cfg.Prefix + "/blobs/"
	strays := []string{
		root + "sha256/" + hex[:2] + "/" + hex + ".orig",
		root + "sha256/" + other[:2] + "/" + strings.ToUpper(other),
		root + "sha256/" + hex[:2] + "/" + other, // Wrong prefix directory.
		root + "sha256/zz/" + other,
		root + "sha256/" + other, // Missing prefix directory.
		root + "md5/" + other[:2] + "/" + other,
		root + "sha512/" + other[:2] + "/" + other, // Too short for sha512.
		cfg.Prefix + "/uploads/" + other,
		cfg.Prefix + "/sha256/" + other[:2] + "/" + other,
	}
	client, err := s3test.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range strays {
		if _, err := client.PutObject(t.Context(), cfg.Bucket, k, strings.NewReader("stray"), 5, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("putting %s: %v", k, err)
		}
	}
	var got []digest.Digest
	if err := d.List(t.Context(), func(info storage.Info) error {
		got = append(got, info.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []digest.Digest{good}) {
		t.Errorf("List = %v, want [%s]", got, good)
	}
}

// A crash mid-Put leaves an incomplete multipart upload; New aborts it once
// it is old, and AbortStaleUploads on demand.
func TestAbortStaleUploads(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	d := newDriver(t, cfg)
	client, err := s3test.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: client}
	dgst := digest.SHA256.FromString("crashed")
	key := cfg.Prefix + "/blobs/sha256/" + dgst.Encoded()[:2] + "/" + dgst.Encoded()
	if _, err := core.NewMultipartUpload(t.Context(), cfg.Bucket, key, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Outside the prefix: not the driver's to abort.
	if _, err := core.NewMultipartUpload(t.Context(), cfg.Bucket, "elsewhere/x", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// A fresh upload may belong to a Put still running: New leaves it.
	newDriver(t, cfg)
	if _, uploads := keys(t, cfg, cfg.Prefix); len(uploads) != 1 {
		t.Fatalf("uploads after New = %v, want the fresh one kept", uploads)
	}
	n, err := d.AbortStaleUploads(t.Context(), time.Now().Add(time.Minute))
	if err != nil || n != 1 {
		t.Errorf("AbortStaleUploads = %d, %v; want 1, nil", n, err)
	}
	if _, uploads := keys(t, cfg, cfg.Prefix); len(uploads) != 0 {
		t.Errorf("uploads left: %v", uploads)
	}
	if _, uploads := keys(t, cfg, "elsewhere/"); len(uploads) != 1 {
		t.Errorf("upload outside the prefix gone: %v", uploads)
	}
}

func TestNewErrors(t *testing.T) {
	cfg := s3test.Start(t)
	for _, tc := range []struct {
		name string
		edit func(*s3.Config)
		want string
	}{
		{"missing bucket", func(c *s3.Config) { c.Bucket = "no-such-bucket" }, "does not exist"},
		{"wrong secret", func(c *s3.Config) { c.SecretKey = "wrong" }, "checking bucket"},
		{"no bucket", func(c *s3.Config) { c.Bucket = "" }, "no bucket"},
		{"small part", func(c *s3.Config) { c.PartSize = 1 << 20 }, "part size"},
		{"half credentials", func(c *s3.Config) { c.SecretKey = "" }, "both"},
		{"bad prefix", func(c *s3.Config) { c.Prefix = "a/../b" }, "prefix"},
	} {
		c := cfg
		tc.edit(&c)
		_, err := s3.New(t.Context(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// Credentials and region default to the standard AWS variables.
func TestEnvironmentDefaults(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretKey)
	t.Setenv("AWS_REGION", cfg.Region)
	cfg.AccessKey, cfg.SecretKey, cfg.Region = "", "", ""
	d := newDriver(t, cfg)
	dgst := digest.SHA256.FromString("env")
	if err := d.Put(t.Context(), dgst, -1, strings.NewReader("env")); err != nil {
		t.Fatal(err)
	}
}

// Put streams: what it allocates is bounded by the part size whatever the
// blob's size. Allocations are counted, not timed.
func TestPutMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 64 MiB put in short mode")
	}
	cfg := withPrefix(s3test.Start(t))
	cfg.PartSize = s3.MinPartSize
	d := newDriver(t, cfg)
	small, err := storagetest.PutAllocBytes(t.Context(), d, storagetest.Content{Seed: 1, Size: 2 * s3.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	large, err := storagetest.PutAllocBytes(t.Context(), d, storagetest.Content{Seed: 2, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("allocated %d bytes putting %d MiB, %d putting 64 MiB, with %d MiB parts", small, 2*s3.MinPartSize>>20, large, s3.MinPartSize>>20)
	// Two part buffers, and some slack for the HTTP client.
	if large > 3*s3.MinPartSize {
		t.Errorf("Put of 64 MiB in %d MiB parts allocated %d bytes; want at most three parts' worth", s3.MinPartSize>>20, large)
	}
}

var benchSizes = []struct {
	name string
	size int64
}{
	{"1MiB", 1 << 20},
	{"64MiB", 64 << 20},
}

// BenchmarkPut puts blobs into versitygw with the default part size; the
// figures include versitygw's own work on the same machine.
func BenchmarkPut(b *testing.B) {
	cfg := s3test.Start(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			storagetest.BenchmarkPut(b, newDriver(b, withPrefix(cfg)), s.size)
		})
	}
}

// BenchmarkOpen reads blobs back from versitygw whole.
func BenchmarkOpen(b *testing.B) {
	cfg := s3test.Start(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			storagetest.BenchmarkOpen(b, newDriver(b, withPrefix(cfg)), s.size)
		})
	}
}

// BenchmarkPutMemory shows, in B/op, that putting 256 MiB allocates about
// its two part buffers (16 MiB each by default), or less once the pool holds
// them, and not the blob.
func BenchmarkPutMemory(b *testing.B) {
	cfg := s3test.Start(b)
	b.Run("256MiB", func(b *testing.B) {
		storagetest.BenchmarkPut(b, newDriver(b, withPrefix(cfg)), 256<<20)
	})
}

// With no region given anywhere, the driver asks the service for the
// bucket's.
func TestRegionDiscovered(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	cfg.Region = ""
	d := newDriver(t, cfg)
	dgst := digest.SHA256.FromString("region")
	if err := d.Put(t.Context(), dgst, -1, strings.NewReader("region")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(t.Context(), dgst); err != nil {
		t.Fatal(err)
	}
}

// Seeking costs no request, and each Read after a move opens one GET from
// the new offset: what lets http.ServeContent serve a range of a large blob
// without fetching the rest first.
func TestOpenRequests(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var gets []string // the Range header of each GET, "" for none
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // signed by the driver
		if r.In.Method == http.MethodGet {
			mu.Lock()
			gets = append(gets, r.In.Header.Get("Range"))
			mu.Unlock()
		}
	}})
	defer proxy.Close()
	cfg.Endpoint = proxy.URL
	d := newDriver(t, cfg)

	data := storagetest.Content{Seed: 5, Size: 100_000}.Bytes()
	dgst := digest.SHA256.FromBytes(data)
	if err := d.Put(t.Context(), dgst, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		g := gets
		gets = nil
		return g
	}
	took()

	if end, err := rc.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Fatalf("Seek to end = %d, %v; want %d", end, err, len(data))
	}
	if _, err := rc.Seek(-1000, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	if g := took(); len(g) != 0 {
		t.Errorf("seeking issued GETs %q, want none", g)
	}
	buf := make([]byte, 600)
	for i := range 2 {
		if _, err := io.ReadFull(rc, buf[i*300:(i+1)*300]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf, data[len(data)-1000:len(data)-400]) {
		t.Error("ranged read gave the wrong bytes")
	}
	if g, want := took(), []string{fmt.Sprintf("bytes=%d-", len(data)-1000)}; !slices.Equal(g, want) {
		t.Errorf("two reads after a seek issued GETs %q, want %q", g, want)
	}
	if _, err := rc.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(all, data) {
		t.Errorf("reading from the start gave %d bytes, %v; want the %d put", len(all), err, len(data))
	}
	if g, want := took(), []string{""}; !slices.Equal(g, want) {
		t.Errorf("reading from the start issued GETs %q, want one without Range", g)
	}
}

// A reader from Open hands out a redirect URL without another request to
// the store, so a redirected registry GET costs one HEAD, not two; the URL
// reads the blob.
func TestOpenRedirectNeedsNoRequest(t *testing.T) {
	cfg := withPrefix(s3test.Start(t))
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var requests []string
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // signed by the driver
		mu.Lock()
		requests = append(requests, r.In.Method)
		mu.Unlock()
	}})
	defer proxy.Close()
	cfg.Endpoint = proxy.URL
	d := newDriver(t, cfg)
	data := storagetest.Content{Seed: 6, Size: 2048}.Bytes()
	dgst := digest.SHA256.FromBytes(data)
	if err := d.Put(t.Context(), dgst, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(t.Context(), dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	or, ok := rc.(storage.OpenRedirector)
	if !ok {
		t.Fatalf("the S3 reader %T is not a storage.OpenRedirector", rc)
	}
	mu.Lock()
	requests = nil
	mu.Unlock()
	u, err := or.RedirectURL(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(requests) != 0 {
		t.Errorf("RedirectURL on an open reader made requests %v, want none", requests)
	}
	mu.Unlock()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET of the URL: %s with %d bytes, want 200 with the %d bytes put", resp.Status, len(body), len(data))
	}
}
