package s3_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/s3"
)

// A driver from the server's -storage flag, credentials from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; a blob put, then handed to a
// client as a presigned URL. (Not run: it needs an S3 service.)
func ExampleNew() {
	ctx := context.Background()
	cfg, err := s3.ParseURL("s3://mirror/prod?endpoint=http://127.0.0.1:7070&region=us-east-1")
	if err != nil {
		log.Fatal(err)
	}
	d, err := s3.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	blob := "hello"
	dgst := digest.SHA256.FromString(blob)
	if err := d.Put(ctx, dgst, int64(len(blob)), strings.NewReader(blob)); err != nil {
		log.Fatal(err)
	}

	// A registry handler redirects when the driver can.
	var drv storage.Driver = d
	if r, ok := drv.(storage.Redirector); ok {
		u, err := r.RedirectURL(ctx, dgst, 15*time.Minute)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(http.StatusTemporaryRedirect, u)
	}
}
