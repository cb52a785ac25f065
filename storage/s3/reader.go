package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/storage"
)

// reader reads a blob with ranged GETs, opening one lazily at the current
// offset and dropping it when a Seek moves away.
type reader struct {
	// ctx is Open's: io.ReadSeekCloser has no room for one per call.
	ctx    context.Context
	d      *Driver
	dgst   digest.Digest
	key    string
	size   int64
	pos    int64
	body   io.ReadCloser // nil until a Read needs it
	closed bool
}

var (
	errWhence   = errors.New("s3: Seek: invalid whence")
	errNegative = errors.New("s3: Seek: negative position")
)

// Read reads from the current offset, issuing a GET from there if none is
// open. After an error the next Read issues a fresh GET from where the last
// one stopped.
func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body == nil {
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF && r.pos >= r.size:
		r.drop()
		return n, io.EOF
	case err == io.EOF:
		r.drop()
		return n, &storage.Error{Op: "open", Digest: r.dgst,
			Err: fmt.Errorf("%w: body ended at byte %d of %d", io.ErrUnexpectedEOF, r.pos, r.size)}
	default:
		r.drop()
		return n, opError("open", r.dgst, err)
	}
}

// open starts a GET of the blob from r.pos to its end.
func (r *reader) open() error {
	var opts minio.GetObjectOptions
	if r.pos > 0 {
		opts.Set("Range", fmt.Sprintf("bytes=%d-", r.pos))
	}
	body, _, h, err := r.d.core.GetObject(r.ctx, r.d.bucket, r.key, opts)
	if err != nil {
		return opError("open", r.dgst, err)
	}
	// A service that ignored the Range would send the blob from its start.
	if want := fmt.Sprintf("bytes %d-", r.pos); r.pos > 0 && !strings.HasPrefix(h.Get("Content-Range"), want) {
		body.Close()
		return &storage.Error{Op: "open", Digest: r.dgst,
			Err: fmt.Errorf("ranged GET from byte %d answered with Content-Range %q", r.pos, h.Get("Content-Range"))}
	}
	r.body = body
	return nil
}

// drop closes the current GET, if any.
func (r *reader) drop() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// Seek sets the offset of the next Read, as io.Seeker says, without a
// request: io.SeekEnd counts from the size Open learned. Seeking past the end
// is allowed, and Read there returns io.EOF.
func (r *reader) Seek(offset int64, whence int) (int64, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, errWhence
	}
	if abs < 0 {
		return 0, errNegative
	}
	if abs != r.pos {
		r.drop()
		r.pos = abs
	}
	return abs, nil
}

// Close ends the current GET, if any. Read and Seek fail afterwards.
func (r *reader) Close() error {
	if r.closed {
		return os.ErrClosed
	}
	r.closed = true
	r.drop()
	return nil
}

var _ storage.OpenRedirector = (*reader)(nil)

// RedirectURL presigns a GET of the blob being read; Open has checked that
// it exists.
func (r *reader) RedirectURL(ctx context.Context, expiry time.Duration) (string, error) {
	u, err := r.d.client.PresignedGetObject(ctx, r.d.bucket, r.key, expiry, nil)
	if err != nil {
		return "", opError("redirect", r.dgst, err)
	}
	return u.String(), nil
}
