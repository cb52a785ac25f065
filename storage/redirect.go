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
	// bearer secret for that time. It returns an error wrapping errdef.ErrNotFound
	// if d is not stored, and ErrInvalidDigest if d is malformed.
	RedirectURL(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error)
}

// OpenRedirector is an optional ability of a reader that Open returned: it
// hands out a URL for the blob it reads, as Redirector.RedirectURL does,
// without asking the backing store again whether the blob exists (Open
// already did), so a redirected GET costs one round trip to the store
// instead of two.
type OpenRedirector interface {
	RedirectURL(ctx context.Context, expiry time.Duration) (string, error)
}
