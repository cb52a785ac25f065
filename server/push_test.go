package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/server"
)

// push makes an authenticated registry request with a body; headers come in
// name, value pairs.
func (e *env) push(method, path string, body []byte, header ...string) response {
	e.t.Helper()
	return doPush(e.t, e.content.URL, method, path, body, header...)
}

func doPush(t *testing.T, base, method, path string, body []byte, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.SetBasicAuth(mooring.AdminUser, password)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Authorization" && header[i+1] == "" {
			req.Header.Del("Authorization")
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

// pushBlob uploads b to name in three chunks and returns its digest.
func (e *env) pushBlob(name string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	r := e.push("POST", "/v2/"+name+"/blobs/uploads/", nil)
	if r.status != http.StatusAccepted {
		e.t.Fatalf("start upload: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	third := len(b) / 3
	for i, part := range [][]byte{b[:third], b[third : 2*third], b[2*third:]} {
		start := i * third
		r = e.push("PATCH", loc, part, "Content-Range", fmt.Sprintf("%d-%d", start, start+len(part)-1))
		if r.status != http.StatusAccepted {
			e.t.Fatalf("chunk %d: %d %s", i, r.status, r.body)
		}
		loc = r.header.Get("Location")
	}
	r = e.push("PUT", loc+"?digest="+d.String(), nil)
	if r.status != http.StatusCreated || r.header.Get("Docker-Content-Digest") != d.String() {
		e.t.Fatalf("finish upload: %d %v %s", r.status, r.header, r.body)
	}
	return d
}

// pushImage pushes a one-layer OCI image and its manifest under ref, and
// returns the manifest's bytes and digest.
func (e *env) pushImage(name, ref, seed string, extra string) ([]byte, digest.Digest) {
	e.t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%q}`, seed))
	layer := bytes.Repeat([]byte(seed), 1000)
	cd, ld := e.pushBlob(name, cfg), e.pushBlob(name, layer)
	raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]%s}`,
		content.MediaTypeOCIManifest, content.MediaTypeOCIConfig, cd, len(cfg), content.MediaTypeOCILayerGzip, ld, len(layer), extra))
	r := e.push("PUT", "/v2/"+name+"/manifests/"+ref, raw, "Content-Type", content.MediaTypeOCIManifest)
	if r.status != http.StatusCreated {
		e.t.Fatalf("put manifest: %d %s", r.status, r.body)
	}
	d := digest.FromBytes(raw)
	if r.header.Get("Docker-Content-Digest") != d.String() || r.header.Get("Location") != "/v2/"+name+"/manifests/"+d.String() {
		e.t.Fatalf("put manifest headers: %v", r.header)
	}
	return raw, d
}

// versions returns the version count of the repository named name, as the
// REST API shows it.
func (e *env) versions(name string) int {
	e.t.Helper()
	r := e.call("GET", "/pulp/api/v3/repositories/?name="+name, nil).json(e.t)
	res := r["results"].([]any)
	if len(res) != 1 {
		e.t.Fatalf("repositories named %s: %v", name, r)
	}
	href := res[0].(map[string]any)["_href"].(string)
	return int(e.call("GET", href+"versions/", nil).json(e.t)["count"].(float64))
}

func TestPushAuthentication(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		for _, c := range []struct {
			name   string
			header []string
		}{
			{"anonymous", []string{"Authorization", ""}},
			{"wrong password", []string{"Authorization", "Basic YWRtaW46bm9wZQ=="}},
		} {
			for _, req := range [][2]string{{"POST", "/v2/app/blobs/uploads/"}, {"PUT", "/v2/app/manifests/v1"}, {"DELETE", "/v2/app/blobs/sha256:" + strings.Repeat("0", 64)}} {
				r := e.push(req[0], req[1], nil, c.header...)
				scope := "repository:app:pull,push"
				if req[0] == "DELETE" {
					scope = "repository:app:delete"
				}
				want := `Bearer realm="` + e.content.URL + `/token/",service="mooring",scope="` + scope + `"`
				if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != want || registryError(t, r) != "UNAUTHORIZED" {
					t.Errorf("%s: %s %s: %d %v %s, want 401 with the challenge %s", c.name, req[0], req[1], r.status, r.header, r.body, want)
				}
			}
		}
		// Nothing was created by the refused requests.
		if r := e.get("GET", "/v2/_catalog"); !bytes.Contains(r.body, []byte(`"repositories":[]`)) {
			t.Errorf("catalog after refused pushes: %s", r.body)
		}
	})
}

func TestPushMakesVersions(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		raw, d := e.pushImage("team/app", "v1", "one", "")

		// The first push made a repository and a distribution named after
		// the path; the manifest push made version 1.
		if n := e.versions("team/app"); n != 2 {
			t.Errorf("versions after one manifest push: %d, want 2 (0 and 1)", n)
		}
		dists := e.call("GET", "/pulp/api/v3/docker-distributions/?base_path=team/app", nil).json(t)
		if dists["count"].(float64) != 1 {
			t.Errorf("distributions at team/app: %v", dists)
		}
		r := e.get("GET", "/v2/team/app/manifests/v1")
		if r.status != http.StatusOK || !bytes.Equal(r.body, raw) {
			t.Fatalf("pull pushed manifest: %d %s", r.status, r.body)
		}
		// Pushing the same manifest again changes nothing.
		e.push("PUT", "/v2/team/app/manifests/v1", raw, "Content-Type", content.MediaTypeOCIManifest)
		if n := e.versions("team/app"); n != 2 {
			t.Errorf("versions after the same push: %d, want 2", n)
		}

		// A referrer with a subject: OCI-Subject on PUT, listed by
		// the referrers API, filtered by artifactType.
		subject := fmt.Sprintf(`,"artifactType":"application/vnd.example.sig","subject":{"mediaType":%q,"digest":%q,"size":%d}`, content.MediaTypeOCIManifest, d, len(raw))
		_, sig := e.pushImage("team/app", "sig", "sig", subject)
		if n := e.versions("team/app"); n != 3 {
			t.Errorf("versions after a second manifest: %d, want 3", n)
		}
		r = e.get("GET", "/v2/team/app/referrers/"+d.String())
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(sig.String())) || r.header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
			t.Errorf("referrers of %s: %d %s", d, r.status, r.body)
		}
		r = e.get("GET", "/v2/team/app/referrers/"+d.String()+"?artifactType=application/other")
		if r.header.Get("OCI-Filters-Applied") != "artifactType" || bytes.Contains(r.body, []byte(sig.String())) {
			t.Errorf("filtered referrers: %v %s", r.header, r.body)
		}

		// Deleting the tag, then the manifest, each makes a version.
		if r := e.push("DELETE", "/v2/team/app/manifests/sig", nil); r.status != http.StatusAccepted {
			t.Fatalf("delete tag: %d %s", r.status, r.body)
		}
		if r := e.get("GET", "/v2/team/app/manifests/sig"); r.status != http.StatusNotFound {
			t.Errorf("deleted tag still served: %d", r.status)
		}
		if r := e.get("GET", "/v2/team/app/manifests/"+sig.String()); r.status != http.StatusOK {
			t.Errorf("manifest gone with its tag: %d", r.status)
		}
		if r := e.push("DELETE", "/v2/team/app/manifests/"+d.String(), nil); r.status != http.StatusAccepted {
			t.Fatalf("delete manifest: %d %s", r.status, r.body)
		}
		for _, p := range []string{"v1", d.String()} {
			if r := e.get("GET", "/v2/team/app/manifests/"+p); r.status != http.StatusNotFound {
				t.Errorf("deleted manifest still served as %s: %d", p, r.status)
			}
		}
		if n := e.versions("team/app"); n != 5 {
			t.Errorf("versions after two deletes: %d, want 5", n)
		}
		// An old version still holds what was deleted.
		if r := e.push("DELETE", "/v2/team/app/manifests/"+d.String(), nil); r.status != http.StatusNotFound || registryError(t, r) != "MANIFEST_UNKNOWN" {
			t.Errorf("second delete: %d %s", r.status, r.body)
		}
	})
}

func TestPushBlobVisibleBeforeManifest(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		b := []byte("a staged blob")
		d := e.pushBlob("app", b)
		r := e.get("GET", "/v2/app/blobs/"+d.String())
		if r.status != http.StatusOK || !bytes.Equal(r.body, b) {
			t.Fatalf("staged blob: %d %s", r.status, r.body)
		}
		if r := e.get("GET", "/v2/other/blobs/"+d.String()); r.status != http.StatusNotFound {
			t.Errorf("blob pushed to app served at other: %d", r.status)
		}
		// Mounting it into another repository, from app and anonymously.
		for _, q := range []string{"?mount=" + d.String() + "&from=app", "?mount=" + d.String()} {
			r := e.push("POST", "/v2/other/blobs/uploads/"+q, nil)
			if r.status != http.StatusCreated || r.header.Get("Location") != "/v2/other/blobs/"+d.String() {
				t.Errorf("mount %s: %d %v", q, r.status, r.header)
			}
		}
		// Mounting what is not there starts an upload instead.
		missing := digest.FromString("nowhere")
		if r := e.push("POST", "/v2/other/blobs/uploads/?mount="+missing.String()+"&from=app", nil); r.status != http.StatusAccepted {
			t.Errorf("mount of a missing blob: %d", r.status)
		}
		if r := e.push("DELETE", "/v2/app/blobs/"+d.String(), nil); r.status != http.StatusAccepted {
			t.Fatalf("delete blob: %d %s", r.status, r.body)
		}
		if r := e.get("HEAD", "/v2/app/blobs/"+d.String()); r.status != http.StatusNotFound {
			t.Errorf("deleted blob: %d", r.status)
		}
	})
}

func TestPushDenied(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		newRegistryFixture(t, e) // lib/foo serves a repository made through the API; pinned a version
		for _, name := range []string{"lib/foo", "pinned"} {
			for _, req := range [][2]string{{"POST", "/v2/" + name + "/blobs/uploads/"}, {"PUT", "/v2/" + name + "/manifests/x"}} {
				body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
				r := e.push(req[0], req[1], body, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
				if r.status != http.StatusForbidden || registryError(t, r) != "DENIED" {
					t.Errorf("%s %s: %d %s, want 403 DENIED", req[0], req[1], r.status, r.body)
				}
			}
		}
		// A base path under another is refused as well, not a 500.
		if r := e.push("POST", "/v2/lib/foo/sub/blobs/uploads/", nil); r.status != http.StatusForbidden {
			t.Errorf("push under lib/foo: %d %s", r.status, r.body)
		}
	})
}

func TestPushBadInput(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.pushBlob("app", []byte("x"))
		start := func() string {
			r := e.push("POST", "/v2/app/blobs/uploads/", nil)
			return r.header.Get("Location")
		}
		loc := start()
		good := digest.FromString("hello")
		for _, c := range []struct {
			method, path string
			body         string
			header       []string
			status       int
			code         string
		}{
			{"PUT", loc + "?digest=sha256:nothex", "hello", nil, 400, "DIGEST_INVALID"},
			{"PUT", loc + "?digest=md5:abc", "hello", nil, 400, "DIGEST_INVALID"},
			{"PUT", loc, "hello", nil, 400, "DIGEST_INVALID"},
			{"PATCH", loc, "abc", []string{"Content-Range", "bytes=garbage"}, 416, "BLOB_UPLOAD_INVALID"},
			{"PATCH", loc, "abc", []string{"Content-Range", "5-7"}, 416, "BLOB_UPLOAD_INVALID"},
			{"PATCH", loc, "abc", []string{"Content-Range", "0-9"}, 416, "BLOB_UPLOAD_INVALID"},
			{"PATCH", "/v2/app/blobs/uploads/not-an-upload", "abc", nil, 404, "BLOB_UPLOAD_UNKNOWN"},
			{"PATCH", "/v2/other/blobs/uploads/" + strings.TrimPrefix(loc, "/v2/app/blobs/uploads/"), "abc", nil, 404, "NAME_UNKNOWN"},
			{"PUT", loc + "?digest=" + good.String(), "not hello", nil, 400, "DIGEST_INVALID"},
			{"POST", "/v2/app/blobs/uploads/?digest=" + good.String(), "not hello", nil, 400, "DIGEST_INVALID"},
			{"POST", "/v2/Bad/blobs/uploads/", "", nil, 400, "NAME_INVALID"},
			{"PUT", "/v2/app/manifests/v1", "{not json", []string{"Content-Type", content.MediaTypeOCIManifest}, 400, "MANIFEST_INVALID"},
			{"PUT", "/v2/app/manifests/-bad", "{}", nil, 400, "TAG_INVALID"},
			{"PUT", "/v2/app/manifests/" + good.String(), `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, nil, 400, "DIGEST_INVALID"},
			{"PUT", "/v2/app/manifests/v1", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + good.String() + `","size":5},"layers":[]}`,
				[]string{"Content-Type", content.MediaTypeOCIManifest}, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"PUT", "/v2/app/manifests/v1", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + good.String() + `","size":5}]}`,
				[]string{"Content-Type", "application/vnd.oci.image.index.v1+json"}, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"PUT", "/v2/app/manifests/v1", strings.Repeat(" ", content.MaxManifestSize+1), nil, 413, ""},
			{"DELETE", "/v2/app/blobs/" + good.String(), "", nil, 404, "BLOB_UNKNOWN"},
			{"DELETE", "/v2/app/blobs/sha256:zz", "", nil, 400, "DIGEST_INVALID"},
			{"DELETE", "/v2/app/manifests/nope", "", nil, 404, "MANIFEST_UNKNOWN"},
			{"DELETE", "/v2/nothere/manifests/nope", "", nil, 404, "NAME_UNKNOWN"},
			{"GET", "/v2/app/referrers/sha256:zz", "", nil, 400, "DIGEST_INVALID"},
		} {
			r := e.push(c.method, c.path, []byte(c.body), c.header...)
			if r.status != c.status {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.body, c.status)
				continue
			}
			if c.code != "" && r.status != 413 {
				if got := registryError(t, r); got != c.code {
					t.Errorf("%s %s: code %s, want %s", c.method, c.path, got, c.code)
				}
			}
		}
		// Nothing a failed request sent became visible.
		if r := e.get("HEAD", "/v2/app/blobs/"+good.String()); r.status != http.StatusNotFound {
			t.Errorf("blob of a failed upload is visible: %d", r.status)
		}
		// The upload is still there, holding the chunk of the PUT whose
		// digest did not match, and can be finished.
		if r := e.push("PUT", loc+"?digest="+digest.FromString("not hello").String(), nil); r.status != http.StatusCreated {
			t.Errorf("finishing the upload after bad requests: %d %s", r.status, r.body)
		}
	})
}

// TestUploadAcrossServers begins an upload on one server and finishes it on
// another sharing the database and the blob store, as after a restart or
// behind a load balancer; an abandoned upload is swept with its bytes.
func TestUploadAcrossServers(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		other := httptest.NewServer(newServer(t, db, e.blobs, server.Options{Logger: slog.New(slog.DiscardHandler)}, mooring.Options{Registry: distribution.Options{TTL: time.Nanosecond}}).Content())
		t.Cleanup(other.Close)

		b := bytes.Repeat([]byte("0123456789"), 1000)
		d := digest.FromBytes(b)
		r := e.push("POST", "/v2/app/blobs/uploads/", nil)
		loc := r.header.Get("Location")
		e.push("PATCH", loc, b[:4000], "Content-Range", "0-3999")
		r = doPush(t, other.URL, "GET", loc, nil)
		if r.status != http.StatusNoContent || r.header.Get("Range") != "0-3999" {
			t.Fatalf("status on the other server: %d %v", r.status, r.header)
		}
		r = doPush(t, other.URL, "PUT", loc+"?digest="+d.String(), b[4000:], "Content-Range", "4000-9999")
		if r.status != http.StatusCreated {
			t.Fatalf("finish on the other server: %d %s", r.status, r.body)
		}
		if r := e.get("GET", "/v2/app/blobs/"+d.String()); r.status != http.StatusOK || !bytes.Equal(r.body, b) {
			t.Fatalf("blob finished elsewhere: %d", r.status)
		}

		// Abandoned: a server with a short timeout sweeps it.
		r = e.push("POST", "/v2/app/blobs/uploads/", nil)
		loc = r.header.Get("Location")
		id := strings.TrimPrefix(loc, "/v2/app/blobs/uploads/")
		e.push("PATCH", loc, b)
		time.Sleep(20 * time.Millisecond)
		sweeper := newMooring(t, db, e.blobs, mooring.Options{UploadTimeout: 10 * time.Millisecond}).Push
		n, err := sweeper.SweepUploads(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d, %v; want 1", n, err)
		}
		if r := e.push("GET", loc, nil); r.status != http.StatusNotFound || registryError(t, r) != "BLOB_UPLOAD_UNKNOWN" {
			t.Errorf("swept upload: %d %s", r.status, r.body)
		}
		if size, err := e.blobs.UploadSize(context.Background(), id); err != nil || size != 0 {
			t.Errorf("swept upload still holds %d bytes (%v)", size, err)
		}
	})
}

// TestPushSeenByOtherServer pushes through one server while another, which
// caches base paths for an hour, has already served the repository: what
// was pushed is found there at once, not after the cache expires.
func TestPushSeenByOtherServer(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		other := httptest.NewServer(newServer(t, db, e.blobs, server.Options{Logger: slog.New(slog.DiscardHandler)}, mooring.Options{Registry: distribution.Options{TTL: time.Hour}}).Content())
		t.Cleanup(other.Close)

		if r := doPush(t, other.URL, "GET", "/v2/app/manifests/v1", nil); r.status != http.StatusNotFound {
			t.Fatalf("before any push: %d", r.status)
		}
		_, d1 := e.pushImage("app", "v1", "one", "")
		if r := doPush(t, other.URL, "GET", "/v2/app/manifests/v1", nil); r.status != http.StatusOK {
			t.Fatalf("first push, seen elsewhere: %d %s", r.status, r.body)
		}
		_, d2 := e.pushImage("app", "v2", "two", "")
		for _, ref := range []string{"v2", d2.String(), d1.String()} {
			if r := doPush(t, other.URL, "GET", "/v2/app/manifests/"+ref, nil); r.status != http.StatusOK {
				t.Errorf("second push, %s seen elsewhere: %d %s", ref, r.status, r.body)
			}
		}
	})
}

// TestJanitor: with no upload starting to trigger a sweep, the janitor
// discards an abandoned upload by itself.
func TestJanitor(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		r := e.push("POST", "/v2/app/blobs/uploads/", nil)
		loc := r.header.Get("Location")
		e.push("PATCH", loc, []byte("abandoned"))
		j := newMooring(t, db, e.blobs, mooring.Options{UploadTimeout: 10 * time.Millisecond}).Push
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { j.RunJanitor(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := e.push("GET", loc, nil)
			if r.status == http.StatusNotFound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("upload still there after 5s: %d", r.status)
			}
		}
	})
}

// TestSweepOrphanedUpload: deleting a push repository through the REST API
// forgets its uploads; the sweep finds their bytes in storage and deletes
// them.
func TestSweepOrphanedUpload(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		r := e.push("POST", "/v2/gone/blobs/uploads/", nil)
		loc := r.header.Get("Location")
		id := strings.TrimPrefix(loc, "/v2/gone/blobs/uploads/")
		e.push("PATCH", loc, []byte("orphan to be"))
		dist := e.call("GET", "/pulp/api/v3/docker-distributions/?base_path=gone", nil).json(t)["results"].([]any)[0].(map[string]any)
		if r := e.call("DELETE", dist["_href"].(string), nil); r.status >= 300 {
			t.Fatalf("delete distribution: %d %s", r.status, r.body)
		}
		repo := e.call("GET", "/pulp/api/v3/repositories/?name=gone", nil).json(t)["results"].([]any)[0].(map[string]any)
		if r := e.call("DELETE", repo["_href"].(string), nil); r.status >= 300 {
			t.Fatalf("delete repository: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
		sweeper := newMooring(t, db, e.blobs, mooring.Options{UploadTimeout: 10 * time.Millisecond}).Push
		if n, err := sweeper.SweepUploads(context.Background()); err != nil || n != 1 {
			t.Fatalf("sweep: %d, %v; want 1", n, err)
		}
		if size, _ := e.blobs.UploadSize(context.Background(), id); size != 0 {
			t.Errorf("orphaned upload still holds %d bytes", size)
		}
	})
}
