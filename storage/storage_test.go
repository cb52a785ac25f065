package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

func TestValidateDigest(t *testing.T) {
	hex := digest.SHA256.FromString("x").Encoded()
	tests := []struct {
		d    digest.Digest
		want error
	}{
		{digest.SHA256.FromString("x"), nil},
		{digest.SHA512.FromString("x"), nil},
		{digest.SHA384.FromString("x"), storage.ErrInvalidDigest},
		{"", storage.ErrInvalidDigest},
		{digest.Digest(hex), storage.ErrInvalidDigest},
		{digest.Digest("sha256:" + strings.ToUpper(hex)), storage.ErrInvalidDigest},
		{digest.Digest("sha256:" + hex[:63]), storage.ErrInvalidDigest},
		{digest.Digest("sha512:" + hex), storage.ErrInvalidDigest},
	}
	for _, tc := range tests {
		if err := storage.ValidateDigest(tc.d); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("ValidateDigest(%q) = %v, want %v", tc.d, err, tc.want)
		}
	}
}

func TestVerifier(t *testing.T) {
	data := []byte("0123456789")
	dgst := digest.SHA256.FromBytes(data)
	tests := []struct {
		name  string
		d     digest.Digest
		size  int64
		write []byte
		want  error
	}{
		{"match", dgst, 10, data, nil},
		{"unknown size", dgst, -1, data, nil},
		{"short", dgst, 11, data, storage.ErrSizeMismatch},
		{"long", dgst, 9, data, storage.ErrSizeMismatch},
		{"wrong bytes", dgst, 10, []byte("9876543210"), storage.ErrDigestMismatch},
		{"wrong bytes unknown size", dgst, -1, data[:5], storage.ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := storage.NewVerifier(tc.d, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(v, bytes.NewReader(tc.write))
			if err == nil {
				err = v.Verify()
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// An over-long source is refused at the first byte too many, not drained.
func TestVerifierStopsEarly(t *testing.T) {
	v, err := storage.NewVerifier(digest.SHA256.FromString("abc"), 3)
	if err != nil {
		t.Fatal(err)
	}
	endless := strings.NewReader(strings.Repeat("a", 1<<20))
	if _, err := storage.Copy(t.Context(), v, endless); !errors.Is(err, storage.ErrSizeMismatch) {
		t.Fatalf("Copy = %v, want ErrSizeMismatch", err)
	}
	if endless.Len() < 1<<20-64<<10 {
		t.Errorf("%d bytes read from the source, want at most one buffer", 1<<20-endless.Len())
	}
}

func TestCopyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var dst bytes.Buffer
	n, err := storage.Copy(ctx, &dst, strings.NewReader("data"))
	if !errors.Is(err, context.Canceled) || n != 0 || dst.Len() != 0 {
		t.Errorf("Copy with a canceled context = %d, %v; want 0, context.Canceled", n, err)
	}
}

func ExampleError() {
	err := error(&storage.Error{Op: "stat", Digest: "sha256:" + digest.Digest(strings.Repeat("0", 64)), Err: errdef.ErrNotFound})
	fmt.Println(errors.Is(err, errdef.ErrNotFound))
	var se *storage.Error
	if errors.As(err, &se) {
		fmt.Println(se.Op)
	}
	// Output:
	// true
	// stat
}
