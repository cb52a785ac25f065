// Package s3 is a storage.Driver that keeps blobs in a bucket of Amazon S3
// or of an S3-compatible service (MinIO, Ceph RGW, Versity S3 Gateway, …):
//
//	<prefix>/blobs/<algorithm>/<first two hex digits>/<hex>   stored blobs
//
// Because the digest, and so the final key, is known before the first byte
// arrives, a Put needs no temporary object and no server-side copy. A blob
// smaller than the part size is read into memory, verified and sent in one
// PUT. A larger one is sent as a multipart upload to its final key, with two
// part buffers in memory (one part is read while the one before it is
// sent); the upload is completed only once the whole stream has been
// verified, and aborted otherwise. S3 makes an object visible only when its
// PUT or CompleteMultipartUpload succeeds, so the final key holds either
// nothing or the complete, verified bytes, even if the process dies midway.
// What such a death leaves is an incomplete multipart upload, which no
// reader sees and which New aborts once it is older than StaleUploadAge (a
// bucket lifecycle rule with AbortIncompleteMultipartUpload does the same on
// the service's side).
//
// Open reads lazily with ranged GETs, so that http.ServeContent can answer
// Range requests without fetching the whole blob, and the driver implements
// storage.Redirector with presigned GET URLs.
//
// The credentials need s3:ListBucket, s3:GetObject, s3:PutObject,
// s3:DeleteObject, s3:ListBucketMultipartUploads and s3:AbortMultipartUpload
// on the bucket and prefix.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// StaleUploadAge is how old an incomplete multipart upload under the
// driver's prefix must be for New to abort it. Such an upload is what is
// left of a Put interrupted by a crash; the age is generous so that New never
// aborts the upload of a slow Put still running in another process that
// shares the bucket.
const StaleUploadAge = 24 * time.Hour

const (
	// contentType is what every blob is stored as; the registry layer
	// knows the real media type.
	contentType = "application/octet-stream"
	// smallBlob is the size below which a Put of known size gets a buffer
	// of its own, just large enough, instead of a pooled part buffer.
	smallBlob = 1 << 20
	// cleanupTimeout bounds the abort of a failed upload, which runs even
	// when the Put's context is done.
	cleanupTimeout = 30 * time.Second
	// partTimeout bounds the upload of one part.
	partTimeout = 10 * time.Minute
)

// Driver stores blobs in an S3 bucket. It is safe for concurrent use, also
// by several processes sharing the bucket and prefix.
type Driver struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
	// bufs holds part buffers of partSize bytes (as *[]byte), so that
	// successive Puts of large blobs reuse them.
	bufs sync.Pool
}

var (
	_ storage.Driver     = (*Driver)(nil)
	_ storage.Redirector = (*Driver)(nil)
)

// New returns a Driver for the bucket and prefix c names. It checks that the
// bucket exists and aborts multipart uploads under the prefix older than
// StaleUploadAge.
func New(ctx context.Context, c Config) (*Driver, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	host, secure, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	if c.InsecureSkipVerify && transport.TLSClientConfig != nil {
		transport.TLSClientConfig.InsecureSkipVerify = true
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentialsFor(c),
		Secure:       secure,
		Transport:    transport,
		Region:       c.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	ok, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: checking bucket %s at %s: %w", c.Bucket, client.EndpointURL().Redacted(), err)
	}
	if !ok {
		return nil, fmt.Errorf("s3: bucket %s does not exist at %s", c.Bucket, client.EndpointURL().Redacted())
	}
	d := &Driver{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   c.Bucket,
		partSize: c.PartSize,
	}
	if c.Prefix != "" {
		d.prefix = c.Prefix + "/"
	}
	if _, err := d.AbortStaleUploads(ctx, time.Now().Add(-StaleUploadAge)); err != nil {
		return nil, fmt.Errorf("s3: aborting stale uploads in bucket %s: %w", c.Bucket, err)
	}
	return d, nil
}

// credentialsFor returns the static credentials in c or, if there are none,
// the standard AWS chain: environment, shared credentials file, instance
// role.
func credentialsFor(c Config) *credentials.Credentials {
	if c.AccessKey != "" {
		return credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken)
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Profile: os.Getenv("AWS_PROFILE")},
		&credentials.IAM{},
	})
}

// blobsRoot is the key prefix of all stored blobs.
func (d *Driver) blobsRoot() string { return d.prefix + "blobs/" }

// key returns the key of blob dgst, which must be valid.
func (d *Driver) key(dgst digest.Digest) string {
	hex := dgst.Encoded()
	return d.blobsRoot() + string(dgst.Algorithm()) + "/" + hex[:2] + "/" + hex
}

// parseKey returns the digest of a key below blobsRoot, with the root cut
// off, and false if the key is not one the driver would have made.
func parseKey(rest string) (digest.Digest, bool) {
	alg, rest, ok1 := strings.Cut(rest, "/")
	dir, hex, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || len(dir) != 2 || !strings.HasPrefix(hex, dir) {
		return "", false
	}
	dgst := digest.Digest(alg + ":" + hex)
	if storage.ValidateDigest(dgst) != nil {
		return "", false
	}
	return dgst, true
}

// Stat describes blob dgst with one HEAD request.
func (d *Driver) Stat(ctx context.Context, dgst digest.Digest) (storage.Info, error) {
	if err := check(ctx, dgst); err != nil {
		return storage.Info{}, opError("stat", dgst, err)
	}
	oi, err := d.client.StatObject(ctx, d.bucket, d.key(dgst), minio.StatObjectOptions{})
	if err != nil {
		return storage.Info{}, opError("stat", dgst, err)
	}
	return storage.Info{Digest: dgst, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Open checks with a HEAD request that blob dgst exists and learns its size,
// and returns a reader that fetches bytes with a GET from the current
// offset on its first Read after Open or after a Seek that moved it: "Range:
// bytes=<offset>-". Seeking costs no request, so http.ServeContent, which
// seeks to the end to learn the size, fetches only the range it serves.
//
// The reader makes its requests with ctx, which must stay live while it is
// read. A reader that is never read makes no GET. If the blob is deleted
// after Open, a later GET fails with an error wrapping errdef.ErrNotFound.
func (d *Driver) Open(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, error) {
	info, err := d.Stat(ctx, dgst)
	if err != nil {
		return nil, opError("open", dgst, errors.Unwrap(err))
	}
	return &reader{ctx: ctx, d: d, dgst: dgst, key: d.key(dgst), size: info.Size}, nil
}

// Put stores the bytes of r as blob dgst; see storage.Putter and the package
// documentation. If the blob is already stored (a HEAD request finds it) Put
// returns nil without reading r.
//
// A Put holds two buffers of the part size at most; buffers are pooled
// between Puts. Concurrent Puts of one digest each upload the same verified
// bytes to the same key, and whichever completes last wins harmlessly.
func (d *Driver) Put(ctx context.Context, dgst digest.Digest, size int64, r io.Reader) error {
	if err := check(ctx, dgst); err != nil {
		return opError("put", dgst, err)
	}
	key := d.key(dgst)
	_, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return &storage.Error{Op: "put", Digest: dgst, Err: err}
	}
	if err := d.put(ctx, dgst, key, size, r); err != nil {
		// Not opError: a missing key or bucket here is not a missing blob.
		return &storage.Error{Op: "put", Digest: dgst, Err: err}
	}
	return nil
}

func (d *Driver) put(ctx context.Context, dgst digest.Digest, key string, size int64, r io.Reader) error {
	v, err := storage.NewVerifier(dgst, size)
	if err != nil {
		return err
	}
	// A blob that fits in the buffer, with a byte to spare to see EOF, goes
	// in one PUT; a larger one in parts of the buffer's length.
	var buf []byte
	if size >= 0 && size < smallBlob {
		buf = make([]byte, size+1)
	} else {
		partLen := d.partSize
		if size > partLen*maxParts {
			partLen = (size + maxParts - 1) / maxParts
		}
		var release func()
		buf, release = d.partBuffer(partLen)
		defer release()
	}
	n, eof, err := fill(ctx, buf, r, v)
	if err != nil {
		return err
	}
	if !eof {
		return d.putMultipart(ctx, key, v, r, buf)
	}
	if err := v.Verify(); err != nil {
		return err
	}
	// Last chance to honour a cancellation: once the PUT succeeds the blob
	// is visible and the Put has happened.
	if err := ctx.Err(); err != nil {
		return err
	}
	sum := dgst.Encoded()
	if dgst.Algorithm() != digest.SHA256 {
		sum = sha256Hex(buf[:n])
	}
	_, err = d.core.PutObject(ctx, d.bucket, key, bytes.NewReader(buf[:n]), int64(n), "", sum, putOptions())
	return err
}

// putMultipart sends first, which fill has filled, and the rest of r as a
// multipart upload to key, and completes the upload only if v then verifies
// the whole stream. On any failure it aborts the upload.
//
// Two buffers of len(first) alternate: one part is read from r into one
// while the part before it goes up from the other, so that a slow source and
// a slow service overlap rather than take turns.
func (d *Driver) putMultipart(ctx context.Context, key string, v *storage.Verifier, r io.Reader, first []byte) (err error) {
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, key, putOptions())
	if err != nil {
		return err
	}
	second, release := d.partBuffer(int64(len(first)))
	defer release()
	// A part in flight is let finish rather than canceled, even when ctx
	// ends: a part the service is still writing when the upload is aborted
	// can bring the upload back (S3 documents that an abort may have to be
	// repeated for this reason), leaving an invisible upload behind. So a
	// failed or canceled Put waits for at most one part, bounded by
	// partTimeout, then aborts.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), partTimeout)
	defer cancel()
	u := &partUploader{d: d, ctx: uctx, key: key, id: id}
	defer func() {
		// The part in flight reads a buffer about to go back to the
		// pool, and must end before the abort.
		if werr := u.wait(); err == nil {
			err = werr
		}
		if err == nil {
			return
		}
		// ctx may be what failed; the abort must happen all the same.
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer acancel()
		if aerr := d.core.AbortMultipartUpload(actx, d.bucket, key, id); aerr != nil {
			err = fmt.Errorf("%w (aborting upload %s also failed: %v)", err, id, aerr)
		}
	}()
	bufs := [2][]byte{first, second}
	cur, n, eof := 0, len(first), false
	for {
		if n > 0 {
			if err := u.wait(); err != nil {
				return err
			}
			if u.started == maxParts {
				return fmt.Errorf("blob longer than %d parts of %d bytes; give its size to Put", maxParts, len(first))
			}
			u.start(bufs[cur][:n])
			cur ^= 1
		}
		if eof {
			break
		}
		if n, eof, err = fill(ctx, bufs[cur], r, v); err != nil {
			return err
		}
	}
	if err := u.wait(); err != nil {
		return err
	}
	if err := v.Verify(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = d.core.CompleteMultipartUpload(ctx, d.bucket, key, id, u.parts, putOptions())
	return err
}

// partUploader sends the parts of one multipart upload, one at a time, each
// in the background.
type partUploader struct {
	d       *Driver
	ctx     context.Context // the Put's, canceled when it fails
	key, id string
	started int                  // parts started
	parts   []minio.CompletePart // parts uploaded
	pending chan partResult      // the part in flight, if any
}

type partResult struct {
	part minio.CompletePart
	err  error
}

// start uploads p as the next part in the background. No other part may be
// in flight. p must not change until wait returns.
func (u *partUploader) start(p []byte) {
	u.started++
	num := u.started
	ch := make(chan partResult, 1)
	u.pending = ch
	go func() {
		// The payload is signed with its SHA-256, computed here, so that
		// the service checks every byte it receives.
		op, err := u.d.core.PutObjectPart(u.ctx, u.d.bucket, u.key, u.id, num, bytes.NewReader(p), int64(len(p)),
			minio.PutObjectPartOptions{Sha256Hex: sha256Hex(p), DisableContentSha256: true})
		ch <- partResult{minio.CompletePart{PartNumber: num, ETag: op.ETag}, err}
	}()
}

// wait waits for the part in flight, if any, and records it.
func (u *partUploader) wait() error {
	if u.pending == nil {
		return nil
	}
	res := <-u.pending
	u.pending = nil
	if res.err != nil {
		return fmt.Errorf("part %d: %w", res.part.PartNumber, res.err)
	}
	u.parts = append(u.parts, res.part)
	return nil
}

// putOptions are the options of every object the driver writes. The
// payload is signed with the SHA-256 the driver computes over the buffer
// (rather than minio-go's streaming signature), so that the service checks
// every byte it receives and any S3-compatible service understands it.
func putOptions() minio.PutObjectOptions {
	return minio.PutObjectOptions{ContentType: contentType, DisableContentSha256: true}
}

// partBuffer returns a buffer of n bytes for parts and a function that
// gives it back. Buffers of the configured part size are pooled.
func (d *Driver) partBuffer(n int64) (buf []byte, release func()) {
	if n != d.partSize {
		return make([]byte, n), func() {}
	}
	p, _ := d.bufs.Get().(*[]byte)
	if p == nil {
		b := make([]byte, n)
		p = &b
	}
	return *p, func() { d.bufs.Put(p) }
}

// fill reads r into buf, through v, until buf is full (eof false) or r is
// exhausted (eof true), checking ctx before each Read.
func fill(ctx context.Context, buf []byte, r io.Reader, v *storage.Verifier) (n int, eof bool, err error) {
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, false, err
		}
		m, rerr := r.Read(buf[n:])
		if m > 0 {
			// The verifier refuses bytes beyond the expected size, so
			// an over-long source is not read much further.
			if _, err := v.Write(buf[n : n+m]); err != nil {
				return n, false, err
			}
			n += m
		}
		if rerr == io.EOF {
			return n, true, nil
		}
		if rerr != nil {
			return n, false, rerr
		}
	}
	return n, false, nil
}

func sha256Hex(p []byte) string {
	sum := sha256.Sum256(p)
	return hex.EncodeToString(sum[:])
}

// Delete removes blob dgst: a HEAD request, to report a missing blob, then a
// DELETE. Two concurrent Deletes of one blob may both succeed.
func (d *Driver) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := check(ctx, dgst); err != nil {
		return opError("delete", dgst, err)
	}
	key := d.key(dgst)
	if _, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{}); err != nil {
		return opError("delete", dgst, err)
	}
	if err := d.client.RemoveObject(ctx, d.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return opError("delete", dgst, err)
	}
	return nil
}

// List calls fn for every stored blob, in key order, listing the blobs/
// prefix a page (up to 1,000 keys) at a time and skipping keys that are not
// well-named blobs.
func (d *Driver) List(ctx context.Context, fn func(storage.Info) error) error {
	if err := ctx.Err(); err != nil {
		return opError("list", "", err)
	}
	// Canceling lctx stops the listing goroutine when fn stops early.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	root := d.blobsRoot()
	for obj := range d.client.ListObjectsIter(lctx, d.bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if obj.Err != nil {
			return opError("list", "", obj.Err)
		}
		dgst, ok := parseKey(strings.TrimPrefix(obj.Key, root))
		if !ok {
			continue
		}
		if err := fn(storage.Info{Digest: dgst, Size: obj.Size, ModTime: obj.LastModified}); err != nil {
			return err
		}
	}
	// The listing may end quietly when ctx is canceled.
	if err := ctx.Err(); err != nil {
		return opError("list", "", err)
	}
	return nil
}

// RedirectURL returns a presigned GET URL of blob dgst valid for expiry
// (between a second and seven days, S3's limits for Signature Version 4),
// after a HEAD request has found the blob. Errors have Op "redirect".
func (d *Driver) RedirectURL(ctx context.Context, dgst digest.Digest, expiry time.Duration) (string, error) {
	if err := check(ctx, dgst); err != nil {
		return "", opError("redirect", dgst, err)
	}
	key := d.key(dgst)
	if _, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{}); err != nil {
		return "", opError("redirect", dgst, err)
	}
	u, err := d.client.PresignedGetObject(ctx, d.bucket, key, expiry, nil)
	if err != nil {
		return "", opError("redirect", dgst, err)
	}
	return u.String(), nil
}

// SweepLeftovers aborts the incomplete multipart uploads older than
// StaleUploadAge (storage.LeftoverSweeper).
func (d *Driver) SweepLeftovers(ctx context.Context) (int, error) {
	return d.AbortStaleUploads(ctx, time.Now().Add(-StaleUploadAge))
}

var _ storage.LeftoverSweeper = (*Driver)(nil)

// AbortStaleUploads aborts the incomplete multipart uploads under the
// driver's blobs/ prefix that were started before cutoff, and returns how
// many it aborted. New calls it with StaleUploadAge; a long-running process
// may call it now and then.
func (d *Driver) AbortStaleUploads(ctx context.Context, cutoff time.Time) (int, error) {
	aborted := 0
	var keyMarker, idMarker string
	for {
		res, err := d.core.ListMultipartUploads(ctx, d.bucket, d.blobsRoot(), keyMarker, idMarker, "", 1000)
		if err != nil {
			return aborted, err
		}
		for _, u := range res.Uploads {
			if !u.Initiated.Before(cutoff) {
				continue
			}
			err := d.core.AbortMultipartUpload(ctx, d.bucket, u.Key, u.UploadID)
			if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchUpload {
				return aborted, err
			}
			aborted++
		}
		if !res.IsTruncated || (res.NextKeyMarker == "" && res.NextUploadIDMarker == "") {
			return aborted, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// check returns ctx's error or the digest's invalidity, if any.
func check(ctx context.Context, dgst digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return storage.ValidateDigest(dgst)
}

// isNotFound reports whether err is S3's answer for a missing key.
func isNotFound(err error) bool {
	var r minio.ErrorResponse
	if !errors.As(err, &r) {
		return false
	}
	return r.Code == minio.NoSuchKey || r.Code == "NotFound" ||
		(r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket)
}

// opError wraps err in a *storage.Error, turning S3's "no such key" into
// errdef.ErrNotFound so that callers need not know about S3.
func opError(op string, dgst digest.Digest, err error) error {
	if isNotFound(err) {
		err = errdef.ErrNotFound
	}
	return &storage.Error{Op: op, Digest: dgst, Err: err}
}
