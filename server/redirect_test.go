package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/server"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// redirectingBlobs is a filesystem driver that hands out URLs on a second
// HTTP server, as S3 hands out presigned URLs.
type redirectingBlobs struct {
	*filesystem.Driver
	origin string
	asked  chan time.Duration
}

var _ storage.Redirector = redirectingBlobs{}

func (b redirectingBlobs) RedirectURL(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error) {
	if _, err := b.Stat(ctx, d); err != nil {
		return "", err
	}
	select {
	case b.asked <- expiry:
	default:
	}
	return b.origin + "/bucket/" + d.String() + "?signature=secret", nil
}

// TestRegistryBlobRedirect serves a registry with RedirectBlobs: a blob
// GET of the served version is a 307 to the store's URL, whose bytes (and
// ranges) are the blob's; HEAD, manifests fetched as blobs, and blobs the
// version does not hold are answered by the registry itself.
func TestRegistryBlobRedirect(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	f := newRegistryFixture(t, e)

	// The "bucket": serves the filesystem driver's blobs with Range support.
	bucket := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := digest.Digest(strings.TrimPrefix(r.URL.Path, "/bucket/"))
		if r.URL.Query().Get("signature") != "secret" {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		rc, err := e.blobs.Open(r.Context(), d)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer rc.Close()
		http.ServeContent(w, r, "", time.Time{}, rc)
	}))
	t.Cleanup(bucket.Close)
	blobs := redirectingBlobs{Driver: e.blobs, origin: bucket.URL, asked: make(chan time.Duration, 1)}
	srv := newServer(t, e.db, blobs, server.Options{RedirectBlobs: true, Logger: slog.New(slog.DiscardHandler)}, mooring.Options{Registry: distribution.Options{TTL: time.Nanosecond}})
	reg := httptest.NewServer(srv.Content())
	t.Cleanup(reg.Close)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(c *http.Client, method, path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, reg.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	layer := f.a.layers[1]
	d := digest.FromBytes(layer)
	path := "/v2/lib/foo/blobs/" + d.String()

	resp, _ := do(noFollow, "GET", path)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, bucket.URL+"/bucket/"+d.String()) ||
		resp.Header.Get("Docker-Content-Digest") != d.String() || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET blob without following: %s, headers %v", resp.Status, resp.Header)
	}
	select {
	case exp := <-blobs.asked:
		if exp != registryapi.DefaultRedirectExpiry {
			t.Errorf("URL asked for %v, want the default %v", exp, registryapi.DefaultRedirectExpiry)
		}
	default:
		t.Error("the driver was not asked for a URL")
	}

	// A client that follows gets the bytes from the bucket, ranges too.
	resp, body := do(http.DefaultClient, "GET", path)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, layer) || resp.Request.URL.Host == strings.TrimPrefix(reg.URL, "http://") {
		t.Errorf("GET blob following: %s from %s, %d bytes", resp.Status, resp.Request.URL, len(body))
	}
	resp, body = do(http.DefaultClient, "GET", path, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, layer[10:20]) {
		t.Errorf("ranged GET following: %s %q", resp.Status, body)
	}

	// A range the store might read differently is answered here.
	for _, rng := range []string{"bytes=500-0", "bytes=999999-", "items=0-1", "bytes=x-1"} {
		resp, _ = do(noFollow, "GET", path, "Range", rng)
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("GET with Range %q: %s, want 416 from the registry", rng, resp.Status)
		}
	}
	resp, _ = do(noFollow, "GET", path, "Range", "bytes=0-9, -5")
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("GET with two good ranges: %s, want a redirect", resp.Status)
	}

	// HEAD is answered here, with the size and digest.
	resp, _ = do(noFollow, "HEAD", path)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != strconv.Itoa(len(layer)) ||
		resp.Header.Get("Docker-Content-Digest") != d.String() || resp.Header.Get("Location") != "" {
		t.Errorf("HEAD blob: %s %v", resp.Status, resp.Header)
	}

	// A manifest is not in the store as a blob: it is streamed.
	resp, body = do(noFollow, "GET", "/v2/lib/foo/blobs/"+f.listDig.String())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.list) {
		t.Errorf("manifest as blob: %s", resp.Status)
	}

	// A blob the served version does not hold is not redirected, even
	// though the store has it.
	other := "/v2/pinned/blobs/" + digest.FromBytes(f.b.layers[1]).String()
	resp, body = do(noFollow, "GET", other)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" || !bytes.Contains(body, []byte("BLOB_UNKNOWN")) {
		t.Errorf("GET %s: %s %s", other, resp.Status, body)
	}
}
