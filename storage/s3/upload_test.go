package s3_test

import (
	"testing"

	"github.com/mooring-dev/mooring/storage/s3"
	"github.com/mooring-dev/mooring/storage/s3/s3test"
	"github.com/mooring-dev/mooring/storage/storagetest"
)

// TestUploads runs the Uploader suite with the smallest part size, so that
// a 3 MiB upload is one chunk per append and larger appends would be
// several; an upload begun through one Driver is finished through another.
func TestUploads(t *testing.T) {
	cfg := s3test.Start(t)
	cfg.PartSize = s3.MinPartSize
	cfgs := map[storagetest.UploadDriver]s3.Config{}
	storagetest.RunUploads(t, func(t *testing.T) storagetest.UploadDriver {
		c := withPrefix(cfg)
		d := newDriver(t, c)
		cfgs[d] = c
		return d
	}, func(t *testing.T, d storagetest.UploadDriver) storagetest.UploadDriver {
		return newDriver(t, cfgs[d])
	})
}
