// Package storage defines Mooring's content-addressed blob store: the small
// interfaces its callers ask for, composed into Driver, the errors every
// driver returns, and the streaming verification drivers share.
//
// A blob is named by its digest (OCI image-spec "Digests" section); only the
// sha256 and sha512 algorithms are accepted. A blob becomes visible only once
// its bytes have been checked against that digest, so a reader never sees a
// half-written or corrupt blob.
//
// Drivers live in sub-packages (filesystem, and later s3); storagetest holds
// the conformance suite every driver runs.
package storage

import (
	"context"
	"fmt"
	"hash"
	"io"
	"time"

	// Register the hash functions behind the accepted digest algorithms.
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/opencontainers/go-digest"
)

// Info describes a stored blob.
type Info struct {
	// Digest names the blob.
	Digest digest.Digest
	// Size is the length of the blob in bytes.
	Size int64
	// ModTime is when the blob was stored, as the driver records it.
	ModTime time.Time
}

// Stater reports on a stored blob.
type Stater interface {
	// Stat describes blob d. It returns an error wrapping errdef.ErrNotFound if d is
	// not stored.
	Stat(ctx context.Context, d digest.Digest) (Info, error)
}

// Opener reads stored blobs.
type Opener interface {
	// Open returns a reader of blob d positioned at offset 0; Seek gives
	// ranged reads. The caller closes it. It returns an error wrapping
	// errdef.ErrNotFound if d is not stored.
	//
	// For the filesystem driver the reader is the *os.File itself, so that
	// net/http can use sendfile when it is passed to http.ServeContent.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error)
}

// Putter stores blobs.
type Putter interface {
	// Put stores the bytes of r as blob d. size is the expected length in
	// bytes, or -1 if unknown (any negative value means unknown).
	//
	// The digest, with d's algorithm, and the size are verified while the
	// bytes stream through; the blob is never held whole in memory. On a
	// mismatch nothing becomes visible and the error wraps ErrDigestMismatch
	// or ErrSizeMismatch. When size is known, Put stops reading as soon as r
	// yields more than size bytes.
	//
	// If blob d is already stored Put returns nil without reading r: the
	// stored copy was verified when it was put. Callers that must drain r (a
	// request body, say) do so themselves.
	//
	// If ctx is done before the blob is stored, Put returns an error wrapping
	// ctx.Err() and nothing becomes visible. Put checks ctx between reads; it
	// cannot interrupt a Read that blocks, so r should itself honour ctx, as
	// net/http request bodies do.
	Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error
}

// Deleter removes blobs.
type Deleter interface {
	// Delete removes blob d. It returns an error wrapping errdef.ErrNotFound if d
	// is not stored. Readers that already opened d may go on reading it.
	Delete(ctx context.Context, d digest.Digest) error
}

// Lister enumerates stored blobs.
type Lister interface {
	// List calls fn for every stored blob, in an order the driver chooses,
	// and stops at the first error fn returns, which List returns as is.
	// Blobs put or deleted while List runs may or may not be seen.
	List(ctx context.Context, fn func(Info) error) error
}

// Driver is a complete blob store. Code that needs only part of it asks for
// the narrower interface.
type Driver interface {
	Stater
	Opener
	Putter
	Deleter
	Lister
}

// Errors returned by drivers, wrapped (usually in an *Error) with the digest
// that failed; test for them with errors.Is. errdef.ErrNotFound means no
// blob is stored under the digest. The others are cases of errdef's
// registry codes, so a server answers them without a table of its own.
var (
	// ErrDigestMismatch: the bytes do not hash to the digest they were put under.
	ErrDigestMismatch = errdef.New(errdef.ErrDigestInvalid, "digest mismatch")
	// ErrSizeMismatch: the bytes are not as long as the size they were put with.
	ErrSizeMismatch = errdef.New(errdef.ErrSizeInvalid, "size mismatch")
	// ErrInvalidDigest: the digest is malformed or its algorithm is neither
	// sha256 nor sha512.
	ErrInvalidDigest = errdef.New(errdef.ErrDigestInvalid, "invalid digest")
)

// Error records the operation and digest of a failed driver call. Err is the
// cause; errors.Is and errors.As see through it.
type Error struct {
	// Op is the method that failed: "stat", "open", "put", "delete" or "list".
	Op string
	// Digest is the blob concerned; empty for list.
	Digest digest.Digest
	// Err is the cause, often wrapping one of the package's sentinels.
	Err error
}

// Error formats the failure as "storage: <op> <digest>: <cause>".
func (e *Error) Error() string {
	if e.Digest == "" {
		return "storage: " + e.Op + ": " + e.Err.Error()
	}
	return "storage: " + e.Op + " " + string(e.Digest) + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ValidateDigest checks that d is well-formed and uses sha256 or sha512. The
// error it returns wraps ErrInvalidDigest. Because a valid digest is a known
// algorithm name, a colon and lower-case hex, drivers may build paths and
// keys from it without further escaping.
func ValidateDigest(d digest.Digest) error {
	// Validate first: Algorithm panics on a digest without a colon.
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidDigest, string(d), err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	default:
		return fmt.Errorf("%w: %q: algorithm must be sha256 or sha512", ErrInvalidDigest, string(d))
	}
}

// Verifier checks a stream of bytes against a digest and a size as it is
// written to. Drivers put it beside the destination, through io.MultiWriter
// or io.TeeReader, and call Verify once the source is exhausted.
type Verifier struct {
	want digest.Digest
	size int64
	n    int64
	h    hash.Hash
}

// NewVerifier returns a Verifier for blob d of the given size (negative if
// unknown). It fails, wrapping ErrInvalidDigest, if d is not valid.
func NewVerifier(d digest.Digest, size int64) (*Verifier, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	if size < 0 {
		size = -1
	}
	return &Verifier{want: d, size: size, h: d.Algorithm().Hash()}, nil
}

// Write hashes p. Once more bytes than the expected size have been written it
// returns an error wrapping ErrSizeMismatch, so that a copy stops early
// instead of draining an over-long source.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.size >= 0 && v.n+int64(len(p)) > v.size {
		return 0, fmt.Errorf("%w: expected %d bytes, got more", ErrSizeMismatch, v.size)
	}
	v.h.Write(p) // hash.Hash.Write never fails.
	v.n += int64(len(p))
	return len(p), nil
}

// Written returns how many bytes have been written so far.
func (v *Verifier) Written() int64 { return v.n }

// Verify reports whether everything written matches the expected size and
// digest. The error wraps ErrSizeMismatch or ErrDigestMismatch.
func (v *Verifier) Verify() error {
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("%w: expected %d bytes, got %d", ErrSizeMismatch, v.size, v.n)
	}
	if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
		return fmt.Errorf("%w: got %s", ErrDigestMismatch, got)
	}
	return nil
}

// Copy copies src to dst until EOF, like io.Copy, but checks ctx before each
// Read and returns ctx.Err() once ctx is done. It lets a driver stop a Put
// between reads; a Read that blocks is not interrupted.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, copyBufferSize)
	var written int64
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// copyBufferSize is Copy's buffer: the size io.Copy uses, large enough for
// throughput, small beside any layer.
const copyBufferSize = 32 << 10
