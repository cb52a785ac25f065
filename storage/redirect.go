package storage

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Redirector is an optional ability of a driver whose blobs a client can
// fetch straight from the backing store, such as an S3 bucket, without the
// bytes passing through Mooring. Find it with a type assertion on a Driver;
// a registry answers a blob GET with a redirect to the URL (OCI
// distribution-spec, "Pulling blobs": a 307 to another location is allowed).
type Redirector interface {
	// RedirectURL returns a URL from which a plain HTTP GET, needing no
	// credentials, reads blob d for at least expiry from now. The URL is a
	// bearer secret for that time. It returns an error wrapping ErrNotFound
	// if d is not stored, and ErrInvalidDigest if d is malformed.
	RedirectURL(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error)
}
