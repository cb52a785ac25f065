package storagetest

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// UploadDriver is a driver that also keeps uploads in progress.
type UploadDriver interface {
	storage.Driver
	storage.Uploader
}

// RunUploads runs the suite of storage.Uploader against the drivers
// newDriver returns, one fresh store per subtest. reopen, when not nil,
// returns another driver on the same store, as a restarted process or a
// second process would have: an upload begun on one is finished on the
// other.
func RunUploads(t *testing.T, newDriver func(t *testing.T) UploadDriver, reopen func(t *testing.T, d UploadDriver) UploadDriver) {
	if reopen == nil {
		reopen = func(_ *testing.T, d UploadDriver) UploadDriver { return d }
	}
	c := Content{Seed: 7, Size: 3<<20 + 12345}
	data := c.Bytes()

	t.Run("Chunks", func(t *testing.T) {
		d := newDriver(t)
		ctx := t.Context()
		third := int64(len(data) / 3)
		for i, off := range []int64{0, third, 2 * third} {
			end := off + third
			if i == 2 {
				end = int64(len(data))
			}
			n, err := d.AppendUpload(ctx, "u1", off, bytes.NewReader(data[off:end]))
			if err != nil || n != end {
				t.Fatalf("append %d: size %d, %v; want %d", i, n, err, end)
			}
		}
		if _, err := d.Stat(ctx, c.Digest(digest.SHA256)); !errors.Is(err, errdef.ErrNotFound) {
			t.Fatalf("blob visible before commit: %v", err)
		}
		d2 := reopen(t, d)
		if n, err := d2.UploadSize(ctx, "u1"); err != nil || n != int64(len(data)) {
			t.Fatalf("size after reopen %d, %v; want %d", n, err, len(data))
		}
		if err := d2.CommitUpload(ctx, "u1", c.Digest(digest.SHA256), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		assertBlob(t, d2, c.Digest(digest.SHA256), data)
		if n, err := d2.UploadSize(ctx, "u1"); err != nil || n != 0 {
			t.Fatalf("upload left after commit: %d, %v", n, err)
		}
	})

	t.Run("OutOfOrder", func(t *testing.T) {
		d := newDriver(t)
		ctx := t.Context()
		if _, err := d.AppendUpload(ctx, "u2", 0, bytes.NewReader(data[:100])); err != nil {
			t.Fatal(err)
		}
		n, err := d.AppendUpload(ctx, "u2", 200, bytes.NewReader(data[200:300]))
		var oe *storage.OffsetError
		if !errors.As(err, &oe) || !errors.Is(err, storage.ErrUploadOffset) || n != 100 || oe.Size != 100 {
			t.Fatalf("out-of-order append: %d, %v; want size 100 and an OffsetError", n, err)
		}
		// A negative offset appends at the end, wherever it is.
		if n, err := d.AppendUpload(ctx, "u2", -1, bytes.NewReader(data[100:])); err != nil || n != int64(len(data)) {
			t.Fatalf("streamed append: %d, %v", n, err)
		}
		if err := d.CommitUpload(ctx, "u2", c.Digest(digest.SHA512), -1); err != nil {
			t.Fatal(err)
		}
		assertBlob(t, d, c.Digest(digest.SHA512), data)
	})

	t.Run("Mismatch", func(t *testing.T) {
		d := newDriver(t)
		ctx := t.Context()
		if _, err := d.AppendUpload(ctx, "u3", 0, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		other := Content{Seed: 8, Size: c.Size}.Digest(digest.SHA256)
		if err := d.CommitUpload(ctx, "u3", other, -1); !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatalf("commit under another digest: %v, want ErrDigestMismatch", err)
		}
		if err := d.CommitUpload(ctx, "u3", c.Digest(digest.SHA256), c.Size+1); !errors.Is(err, storage.ErrSizeMismatch) {
			t.Fatalf("commit with another size: %v, want ErrSizeMismatch", err)
		}
		for _, dg := range []digest.Digest{other, c.Digest(digest.SHA256)} {
			if _, err := d.Stat(ctx, dg); !errors.Is(err, errdef.ErrNotFound) {
				t.Fatalf("%s visible after a failed commit: %v", dg, err)
			}
		}
		// The upload is intact: committing it rightly still works.
		if err := d.CommitUpload(ctx, "u3", c.Digest(digest.SHA256), c.Size); err != nil {
			t.Fatal(err)
		}
		assertBlob(t, d, c.Digest(digest.SHA256), data)
	})

	t.Run("ReaderErrorKeepsPrefix", func(t *testing.T) {
		d := newDriver(t)
		ctx := t.Context()
		r := io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(errors.New("client went away")))
		n, err := d.AppendUpload(ctx, "u4", 0, r)
		if err == nil {
			t.Fatal("append from a failing reader succeeded")
		}
		if got, _ := d.UploadSize(ctx, "u4"); got != n {
			t.Fatalf("append reported %d bytes, upload holds %d", n, got)
		}
		if _, err := d.AppendUpload(ctx, "u4", n, bytes.NewReader(data[n:])); err != nil {
			t.Fatal(err)
		}
		if err := d.CommitUpload(ctx, "u4", c.Digest(digest.SHA256), c.Size); err != nil {
			t.Fatal(err)
		}
		assertBlob(t, d, c.Digest(digest.SHA256), data)
	})

	t.Run("List", func(t *testing.T) {
		d := newDriver(t)
		l, ok := d.(storage.UploadLister)
		if !ok {
			t.Skip("the driver does not list uploads")
		}
		ctx := t.Context()
		start := time.Now().Add(-time.Minute)
		for _, id := range []string{"la", "lb"} {
			for off := int64(0); off < 3000; off += 1000 {
				if _, err := d.AppendUpload(ctx, id, off, bytes.NewReader(data[off:off+1000])); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := d.CommitUpload(ctx, "lb", digest.SHA256.FromBytes(data[:3000]), 3000); err != nil {
			t.Fatal(err)
		}
		got := map[string]time.Time{}
		if err := l.ListUploads(ctx, func(id string, mod time.Time) error { got[id] = mod; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got["la"].Before(start) {
			t.Fatalf("ListUploads = %v, want la alone, modified lately", got)
		}
	})

	t.Run("EmptyAndDelete", func(t *testing.T) {
		d := newDriver(t)
		ctx := t.Context()
		empty := digest.SHA256.FromBytes(nil)
		if err := d.CommitUpload(ctx, "u5", empty, 0); err != nil {
			t.Fatalf("commit of an upload never written: %v", err)
		}
		assertBlob(t, d, empty, nil)
		if _, err := d.AppendUpload(ctx, "u6", 0, bytes.NewReader(data[:10])); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteUpload(ctx, "u6"); err != nil {
			t.Fatal(err)
		}
		if n, err := d.UploadSize(ctx, "u6"); err != nil || n != 0 {
			t.Fatalf("deleted upload holds %d, %v", n, err)
		}
		if err := d.DeleteUpload(ctx, "never"); err != nil {
			t.Fatalf("deleting an upload never written: %v", err)
		}
		for _, bad := range []string{"", "../x", "a/b", string(make([]byte, 65))} {
			if _, err := d.AppendUpload(ctx, bad, 0, bytes.NewReader(nil)); !errors.Is(err, storage.ErrInvalidUploadID) {
				t.Errorf("upload id %q: %v, want ErrInvalidUploadID", bad, err)
			}
		}
	})
}

func assertBlob(t *testing.T, d storage.Driver, dg digest.Digest, want []byte) {
	t.Helper()
	f, err := d.Open(t.Context(), dg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("blob %s: %d bytes, not the %d uploaded", dg, len(got), len(want))
	}
}
