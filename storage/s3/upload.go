package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/storage"
)

var _ storage.Uploader = (*Driver)(nil)

// An upload in progress is a run of chunk objects,
//
//	<prefix>/uploads/<id>/<offset, 20 decimal digits>
//
// each holding the bytes from that offset on. Appends add chunks of at most
// the part size; a commit streams the chunks in order through the verifying
// Put and then deletes them. Any process sharing the bucket can continue or
// commit an upload.

func (d *Driver) uploadPrefix(id string) string { return d.prefix + "uploads/" + id + "/" }

type chunk struct {
	key    string
	offset int64
	size   int64
}

// chunks lists upload id's chunks in order, keeping the contiguous run from
// offset 0 (a chunk left by an append that failed after a later one cannot
// exist, since appends check the size first; anything else is ignored).
func (d *Driver) chunks(ctx context.Context, id string) ([]chunk, int64, error) {
	prefix := d.uploadPrefix(id)
	var all []chunk
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, 0, obj.Err
		}
		off, err := strconv.ParseInt(strings.TrimPrefix(obj.Key, prefix), 10, 64)
		if err != nil {
			continue
		}
		all = append(all, chunk{key: obj.Key, offset: off, size: obj.Size})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].offset < all[j].offset })
	var out []chunk
	var size int64
	for _, c := range all {
		if c.offset != size {
			continue
		}
		out = append(out, c)
		size += c.size
	}
	return out, size, nil
}

// AppendUpload stores r as chunk objects of at most the part size; see
// storage.Uploader. It holds one part buffer.
func (d *Driver) AppendUpload(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	if err := uploadCheck(ctx, id); err != nil {
		return 0, err
	}
	_, size, err := d.chunks(ctx, id)
	if err != nil {
		return 0, &storage.Error{Op: "append", Err: err}
	}
	if offset >= 0 && size != offset {
		return size, &storage.OffsetError{Size: size, Offset: offset}
	}
	buf, release := d.partBuffer(d.partSize)
	defer release()
	for {
		n, eof, err := fillPlain(ctx, buf, r)
		if n > 0 {
			key := fmt.Sprintf("%s%020d", d.uploadPrefix(id), size)
			if _, perr := d.core.PutObject(ctx, d.bucket, key, bytes.NewReader(buf[:n]), int64(n), "", sha256Hex(buf[:n]), putOptions()); perr != nil {
				return size, &storage.Error{Op: "append", Err: perr}
			}
			size += int64(n)
		}
		if err != nil {
			return size, &storage.Error{Op: "append", Err: err}
		}
		if eof {
			return size, nil
		}
	}
}

// fillPlain reads r into buf until buf is full or r ends.
func fillPlain(ctx context.Context, buf []byte, r io.Reader) (n int, eof bool, err error) {
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, false, err
		}
		m, rerr := r.Read(buf[n:])
		n += m
		if rerr == io.EOF {
			return n, true, nil
		}
		if rerr != nil {
			return n, false, rerr
		}
	}
	return n, false, nil
}

// UploadSize sums the sizes of upload id's chunks, listed with one request
// per thousand chunks.
func (d *Driver) UploadSize(ctx context.Context, id string) (int64, error) {
	if err := uploadCheck(ctx, id); err != nil {
		return 0, err
	}
	_, size, err := d.chunks(ctx, id)
	if err != nil {
		return 0, &storage.Error{Op: "upload size", Err: err}
	}
	return size, nil
}

// CommitUpload streams upload id's chunks, in order, through Put, which
// verifies them and makes blob dgst visible only when they match; then it
// deletes the chunks.
func (d *Driver) CommitUpload(ctx context.Context, id string, dgst digest.Digest, size int64) error {
	if err := uploadCheck(ctx, id); err != nil {
		return err
	}
	if err := check(ctx, dgst); err != nil {
		return opError("commit", dgst, err)
	}
	cs, total, err := d.chunks(ctx, id)
	if err != nil {
		return &storage.Error{Op: "commit", Digest: dgst, Err: err}
	}
	if size >= 0 && total != size {
		return &storage.Error{Op: "commit", Digest: dgst, Err: fmt.Errorf("%w: expected %d bytes, upload holds %d", storage.ErrSizeMismatch, size, total)}
	}
	if _, err := d.Stat(ctx, dgst); err == nil {
		// Already stored: the bytes must still be these.
		v, _ := storage.NewVerifier(dgst, total)
		if _, err := storage.Copy(ctx, v, &chunkReader{ctx: ctx, d: d, chunks: cs}); err != nil {
			return &storage.Error{Op: "commit", Digest: dgst, Err: err}
		}
		if err := v.Verify(); err != nil {
			return &storage.Error{Op: "commit", Digest: dgst, Err: err}
		}
	} else if err := d.put(ctx, dgst, d.key(dgst), total, &chunkReader{ctx: ctx, d: d, chunks: cs}); err != nil {
		return &storage.Error{Op: "commit", Digest: dgst, Err: err}
	}
	return d.DeleteUpload(ctx, id)
}

// chunkReader reads chunks one GET after another.
type chunkReader struct {
	ctx    context.Context
	d      *Driver
	chunks []chunk
	body   io.ReadCloser
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for {
		if c.body == nil {
			if len(c.chunks) == 0 {
				return 0, io.EOF
			}
			obj, err := c.d.client.GetObject(c.ctx, c.d.bucket, c.chunks[0].key, minio.GetObjectOptions{})
			if err != nil {
				return 0, err
			}
			c.body, c.chunks = obj, c.chunks[1:]
		}
		n, err := c.body.Read(p)
		if err == io.EOF {
			c.body.Close()
			c.body = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// DeleteUpload removes upload id's chunks.
func (d *Driver) DeleteUpload(ctx context.Context, id string) error {
	if err := uploadCheck(ctx, id); err != nil {
		return err
	}
	prefix := d.uploadPrefix(id)
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return &storage.Error{Op: "delete upload", Err: obj.Err}
		}
		if err := d.client.RemoveObject(ctx, d.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			return &storage.Error{Op: "delete upload", Err: err}
		}
	}
	return nil
}

func uploadCheck(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return storage.ValidateUploadID(id)
}

var _ storage.UploadLister = (*Driver)(nil)

// ListUploads lists the chunk objects under <prefix>/uploads/, one upload
// for each id, with the time of its newest chunk.
func (d *Driver) ListUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	root := d.prefix + "uploads/"
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var id string
	var newest time.Time
	flush := func() error {
		if id == "" {
			return nil
		}
		return fn(id, newest)
	}
	// Keys come in order, so an upload's chunks are listed together.
	for obj := range d.client.ListObjectsIter(lctx, d.bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if obj.Err != nil {
			return &storage.Error{Op: "list uploads", Err: obj.Err}
		}
		this, _, ok := strings.Cut(strings.TrimPrefix(obj.Key, root), "/")
		if !ok || storage.ValidateUploadID(this) != nil {
			continue
		}
		if this != id {
			if err := flush(); err != nil {
				return err
			}
			id, newest = this, time.Time{}
		}
		if obj.LastModified.After(newest) {
			newest = obj.LastModified
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return flush()
}
