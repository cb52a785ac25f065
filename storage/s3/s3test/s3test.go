// Package s3test starts a real S3-compatible server, the Versity S3 Gateway
// (versitygw) over a temporary directory, for tests of code that stores blobs
// in S3. Install it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// Tests that call Start skip when versitygw is neither on $PATH nor in
// $GOBIN or $GOPATH/bin, unless $MOORING_TEST_REQUIRE is set, as in CI, when
// they fail instead.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mooring-dev/mooring/internal/testproc"
	"github.com/mooring-dev/mooring/storage/s3"
)

// The credentials and region of every server Start starts.
const (
	AccessKey = "mooringtest"
	SecretKey = "mooringtestsecret"
	Region    = "us-east-1"
	// Bucket is the bucket Start creates.
	Bucket = "mooring-test"
)

// InstallCommand is how to install the versitygw Start runs.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// startTimeout bounds how long Start waits for versitygw to answer.
const startTimeout = 30 * time.Second

// Start starts versitygw on a free loopback port, keeping its objects in a
// temporary directory, creates Bucket in it, and returns the Config of a
// driver for that bucket, with no prefix and a plain-HTTP, path-style
// endpoint. The server is stopped and its directory removed when t ends.
//
// The exact command is
//
//	versitygw --access AccessKey --secret SecretKey --region us-east-1 \
//		--port 127.0.0.1:PORT --quiet --keep-alive \
//		posix --sidecar DIR/meta DIR/data
//
// --sidecar keeps object metadata in files rather than extended
// attributes, so that any filesystem (tmpfs included) will do;
// --keep-alive lets clients reuse connections, as real services do
// (without it a 1 MiB put takes twice as long).
func Start(t testing.TB) s3.Config {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("s3test: %v (MOORING_TEST_REQUIRE is set)", err)
		}
		t.Skipf("s3test: %v; install it with %s", err, InstallCommand)
	}
	cfg, stop, err := Run(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return cfg
}

// Run is Start for programs, such as benchmarks, that have no testing.TB:
// it starts versitygw from bin (see Find) with its objects in dir/data and
// dir/meta, which must not exist yet, creates Bucket and returns the Config
// of a driver for it and a function that stops the server.
func Run(bin, dir string) (s3.Config, func(), error) {
	data, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, d := range []string{data, meta} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return s3.Config{}, nil, err
		}
	}
	// The port is free when chosen but may be taken before versitygw binds
	// it; try a few.
	var errs []error
	for range 3 {
		cfg, stop, err := start(bin, data, meta)
		if err == nil {
			return cfg, stop, nil
		}
		errs = append(errs, err)
	}
	return s3.Config{}, nil, fmt.Errorf("s3test: starting versitygw: %v", errors.Join(errs...))
}

// Find returns the path of the versitygw binary: on $PATH, else in $GOBIN,
// else in the bin directory of the first $GOPATH entry.
func Find() (string, error) {
	return testproc.LookPath("versitygw")
}

// start runs one versitygw and waits for it. On success it returns the
// function that stops the server.
func start(bin, data, meta string) (s3.Config, func(), error) {
	addr, err := testproc.FreeAddr()
	if err != nil {
		return s3.Config{}, nil, err
	}
	cmd := exec.Command(bin,
		"--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", addr, "--quiet", "--keep-alive",
		"posix", "--sidecar", meta, data)
	out := &testproc.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	testproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return s3.Config{}, nil, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	cfg := s3.Config{
		Bucket:    Bucket,
		Endpoint:  "http://" + addr,
		Region:    Region,
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		PathStyle: true,
	}
	client, err := Client(cfg)
	if err != nil {
		stop()
		return s3.Config{}, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-exited:
			return s3.Config{}, nil, fmt.Errorf("versitygw exited: %s", out.String())
		default:
		}
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		err = client.MakeBucket(rctx, Bucket, minio.MakeBucketOptions{Region: Region})
		rcancel()
		if err == nil || minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			break
		}
		if ctx.Err() != nil {
			stop()
			return s3.Config{}, nil, fmt.Errorf("versitygw at %s not ready after %v: %v; output: %s", addr, startTimeout, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cfg, stop, nil
}

// Client returns a minio-go client for the server cfg names, for tests that
// look at the bucket behind a driver's back.
func Client(cfg s3.Config) (*minio.Client, error) {
	return minio.New(strings.TrimPrefix(cfg.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
}
