package filesystem_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// Example stores a blob, reads part of it back, and shows that bytes which
// do not match their digest are refused and never become visible.
func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "mooring-blobs")
	defer os.RemoveAll(root)
	blobs, err := filesystem.New(root)
	if err != nil {
		log.Fatal(err)
	}

	data := "hello, registry"
	d := digest.FromString(data)
	if err := blobs.Put(ctx, d, int64(len(data)), strings.NewReader(data)); err != nil {
		log.Fatal(err)
	}
	f, _ := blobs.Open(ctx, d)
	f.Seek(7, io.SeekStart) // a ranged read
	rest, _ := io.ReadAll(f)
	f.Close()
	fmt.Printf("%q\n", rest)

	bad := digest.FromString("something else")
	err = blobs.Put(ctx, bad, int64(len(data)), strings.NewReader(data))
	fmt.Println(errors.Is(err, storage.ErrDigestMismatch))
	_, err = blobs.Stat(ctx, bad)
	fmt.Println(errors.Is(err, errdef.ErrNotFound))
	// Output:
	// "registry"
	// true
	// true
}
