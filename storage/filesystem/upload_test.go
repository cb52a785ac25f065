package filesystem_test

import (
	"testing"

	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/storage/storagetest"
)

// TestUploads runs the Uploader suite; an upload begun through one Driver
// is finished through another on the same root, as after a restart.
func TestUploads(t *testing.T) {
	roots := map[storagetest.UploadDriver]string{}
	storagetest.RunUploads(t, func(t *testing.T) storagetest.UploadDriver {
		root := t.TempDir()
		d, err := filesystem.New(root)
		if err != nil {
			t.Fatal(err)
		}
		roots[d] = root
		return d
	}, func(t *testing.T, d storagetest.UploadDriver) storagetest.UploadDriver {
		d2, err := filesystem.New(roots[d])
		if err != nil {
			t.Fatal(err)
		}
		return d2
	})
}
