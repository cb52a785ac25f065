package storage

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/opencontainers/go-digest"
)

// Uploader keeps the bytes of blob uploads in progress (distribution spec
// "Pushing blobs": POST, PATCH chunks, PUT to complete) in the store itself,
// so that an upload survives a restart and any process sharing the store can
// continue it. An upload is named by an id the caller chooses (see
// ValidateUploadID); what else is known of it (repository, start time) is
// the caller's to keep.
//
// An upload holds the bytes appended so far, in order. None of them is
// visible as a blob until CommitUpload has verified them against a digest
// and a size.
type Uploader interface {
	// AppendUpload appends the bytes of r to upload id, which must hold
	// exactly offset bytes (an upload not yet written holds 0) unless
	// offset is negative, which appends at the end whatever it is; it returns
	// the size the upload then has. When the upload holds another number of
	// bytes it returns that size and an error wrapping ErrUploadOffset,
	// without reading r. When r fails partway the bytes appended so far
	// stay, and the returned size says how many there are.
	AppendUpload(ctx context.Context, id string, offset int64, r io.Reader) (int64, error)
	// UploadSize returns how many bytes upload id holds; 0 for an upload
	// never written or deleted.
	UploadSize(ctx context.Context, id string) (int64, error)
	// CommitUpload verifies that the bytes of upload id hash to d and, when
	// size is not negative, that there are size of them; stores them as
	// blob d; and deletes the upload. On a mismatch the error wraps
	// ErrDigestMismatch or ErrSizeMismatch, no blob becomes visible, and
	// the upload is left as it was.
	CommitUpload(ctx context.Context, id string, d digest.Digest, size int64) error
	// DeleteUpload discards upload id and its bytes; deleting an upload that
	// holds nothing is not an error.
	DeleteUpload(ctx context.Context, id string) error
}

// ErrUploadOffset: an append did not start at the end of the upload (the
// distribution spec answers 416 Requested Range Not Satisfiable).
var ErrUploadOffset = errdef.New(errdef.ErrBlobUploadInvalid, "upload offset mismatch")

// ErrInvalidUploadID: an upload id is not 1 to 64 characters of letters,
// digits, '-' and '_'.
var ErrInvalidUploadID = errdef.New(errdef.ErrInvalid, "invalid upload id")

// OffsetError is the error AppendUpload returns when offset is not the
// upload's size. It wraps ErrUploadOffset.
type OffsetError struct {
	// Size is how many bytes the upload holds.
	Size int64
	// Offset is where the append was asked to start.
	Offset int64
}

// Error says where the append started and where it should have.
func (e *OffsetError) Error() string {
	return fmt.Sprintf("%v: upload holds %d bytes, append started at %d", ErrUploadOffset, e.Size, e.Offset)
}

// Unwrap returns ErrUploadOffset.
func (e *OffsetError) Unwrap() error { return ErrUploadOffset }

// ValidateUploadID checks that id is 1 to 64 characters of ASCII letters,
// digits, '-' and '_', so that drivers may build paths and keys from it
// without escaping. The error wraps ErrInvalidUploadID.
func ValidateUploadID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: %q", ErrInvalidUploadID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q", ErrInvalidUploadID, id)
		}
	}
	return nil
}

// UploadLister is implemented by Uploaders that can enumerate the uploads
// they hold, so that bytes whose bookkeeping is gone (the repository was
// deleted, a process crashed between steps) can be found and deleted.
type UploadLister interface {
	// ListUploads calls fn with the id of every upload holding bytes and
	// when it was last appended to, and stops at the first error fn
	// returns, which it returns as is.
	ListUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error
}

// LeftoverSweeper is implemented by drivers that keep scratch state of
// their own while blobs are put (temporary files, incomplete multipart
// uploads): SweepLeftovers deletes what a crashed or vanished process left
// behind, judged by the driver's own rule, and returns how many it
// deleted. A running server calls it periodically, so leftovers do not
// wait for a restart.
type LeftoverSweeper interface {
	SweepLeftovers(ctx context.Context) (int, error)
}
