package storagetest

import (
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/storage"
)

// BenchmarkPut measures Put of one sha256 blob of size bytes into d, with
// b.SetBytes and b.ReportAllocs, so that B/op shows whether Put's memory
// grows with the blob. The blob is deleted, untimed, between iterations so
// every Put really stores it. The source costs next to nothing to read.
func BenchmarkPut(b *testing.B, d storage.Driver, size int64) {
	ctx := b.Context()
	block := patternBlock(1)
	dgst, err := digest.SHA256.FromReader(newPatternReader(block, size))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Put(ctx, dgst, size, newPatternReader(block, size)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Delete(ctx, dgst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkOpen measures Open of a sha256 blob of size bytes in d and
// reading it whole, with b.SetBytes and b.ReportAllocs.
func BenchmarkOpen(b *testing.B, d storage.Driver, size int64) {
	ctx := b.Context()
	block := patternBlock(2)
	dgst, err := digest.SHA256.FromReader(newPatternReader(block, size))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Put(ctx, dgst, size, newPatternReader(block, size)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		rc, err := d.Open(ctx, dgst)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			b.Fatal(err)
		}
		if n != size {
			b.Fatalf("read %d bytes, want %d", n, size)
		}
	}
}

// PutAllocBytes puts c into d as a sha256 blob and returns how many bytes the
// Go heap allocated meanwhile (the growth of runtime.MemStats.TotalAlloc,
// counted over all goroutines, so call it while nothing else runs). A driver
// that streams allocates about the same for any c.Size. The digest is
// computed before counting starts.
func PutAllocBytes(ctx context.Context, d storage.Driver, c Content) (uint64, error) {
	dgst := c.Digest(digest.SHA256)
	r := c.Reader()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := d.Put(ctx, dgst, c.Size, r)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}
