package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/server"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/task"
)

const password = "s3cret-test-password"

// env is a running server: the REST API and the registry on httptest
// servers over a fresh database and blob store.
type env struct {
	t       *testing.T
	db      *bun.DB
	srv     *server.Server
	api     *httptest.Server
	content *httptest.Server
	repos   *repository.Store
	blobs   *filesystem.Driver
	router  routers.Router
	running bool // startRunner ran
}

func newEnv(t *testing.T, db *bun.DB) *env {
	t.Helper()
	ctx := context.Background()
	if err := mooring.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := mooring.NewUsers(db).SetPassword(ctx, mooring.AdminUser, password); err != nil {
		t.Fatal(err)
	}
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A TTL of a nanosecond: tests see a repository's new version at once.
	srv := newServer(t, db, blobs, server.Options{Logger: slog.New(slog.DiscardHandler)}, mooring.Options{Registry: distribution.Options{TTL: time.Nanosecond}})
	e := &env{t: t, db: db, srv: srv, repos: repository.NewStore(db), blobs: blobs}
	e.api = httptest.NewServer(srv.API())
	t.Cleanup(e.api.Close)
	e.content = httptest.NewServer(srv.Content())
	t.Cleanup(e.content.Close)
	e.router = openapiRouter(t)
	return e
}

// newMooring opens Mooring on db and blobs (nil: a fresh directory).
func newMooring(t testing.TB, db *bun.DB, blobs storage.Driver, opts mooring.Options) *mooring.Mooring {
	t.Helper()
	if blobs == nil {
		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		blobs = fs
	}
	m, err := mooring.New(context.Background(), db, blobs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newServer is a Server over newMooring(db, blobs, mopts).
func newServer(t testing.TB, db *bun.DB, blobs storage.Driver, opts server.Options, mopts mooring.Options) *server.Server {
	t.Helper()
	opts.Mooring = newMooring(t, db, blobs, mopts)
	return server.New(opts)
}

var openapiDoc *openapi3.T

// openapiRouter loads the document the server serves and validates it.
func openapiRouter(t *testing.T) routers.Router {
	t.Helper()
	if openapiDoc == nil {
		raw, err := server.OpenAPI()
		if err != nil {
			t.Fatal(err)
		}
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			t.Fatalf("load OpenAPI document: %v", err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("OpenAPI document is invalid: %v", err)
		}
		openapiDoc = doc
	}
	doc := *openapiDoc
	doc.Servers = openapi3.Servers{{URL: "http://localhost"}}
	r, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// call makes a REST request as admin (auth false: without credentials) and
// checks the response against the OpenAPI document: every response the
// tests see must be one the document describes.
func (e *env) call(method, path string, body any, opts ...func(*http.Request)) response {
	e.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.api.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(mooring.AdminUser, password)
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: out}
	if r.status >= 500 {
		e.t.Errorf("%s %s: %d %s", method, path, r.status, out)
	}
	e.validate(req, raw, r)
	return r
}

func noAuth(r *http.Request) { r.Header.Del("Authorization") }

func (e *env) validate(req *http.Request, body []byte, r response) {
	e.t.Helper()
	vreq := req.Clone(context.Background())
	vreq.URL.Scheme, vreq.URL.Host, vreq.Host = "http", "localhost", "localhost"
	if body != nil {
		vreq.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := e.router.FindRoute(vreq)
	if err != nil {
		if r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed || r.status == http.StatusUnauthorized {
			return // no such operation: nothing to validate against
		}
		e.t.Errorf("%s %s answered %d but the OpenAPI document has no such operation: %v", req.Method, req.URL.Path, r.status, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
	if r.status < 300 && body != nil {
		// What the server accepted, the document must allow.
		vin := *in
		vin.Options = &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
		vin.Request = vreq.Clone(context.Background())
		vin.Request.Body = io.NopCloser(bytes.NewReader(body))
		if err := openapi3filter.ValidateRequest(context.Background(), &vin); err != nil {
			e.t.Errorf("%s %s: the server accepted a request the OpenAPI document refuses: %v\n%s", req.Method, req.URL.Path, err, body)
		}
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
	if err != nil {
		e.t.Errorf("%s %s: response %d does not match the OpenAPI document: %v\n%s", req.Method, req.URL.Path, r.status, err, r.body)
	}
}

// get makes a registry request.
func (e *env) get(method, path string, header ...string) response {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.content.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		e.t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

// registryError returns the code of a registry error response.
func registryError(t *testing.T, r response) string {
	t.Helper()
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("not a registry error: %d %s", r.status, r.body)
	}
	return body.Errors[0].Code
}

// image is content stored through the SDK, as a sync would store it.
type image struct {
	manifest *repository.Content
	blobs    []repository.Content
	raw      []byte
	layers   [][]byte
}

// putImage stores an OCI image with one layer of the given bytes.
func (e *env) putImage(seed string, layer []byte) image {
	e.t.Helper()
	ctx := context.Background()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%q}`, seed))
	var im image
	im.layers = [][]byte{cfg, layer}
	var blobs []content.Blob
	for i, b := range im.layers {
		d := digest.FromBytes(b)
		if err := e.blobs.Put(ctx, d, int64(len(b)), bytes.NewReader(b)); err != nil {
			e.t.Fatal(err)
		}
		mt := content.MediaTypeOCILayerGzip
		if i == 0 {
			mt = content.MediaTypeOCIConfig
		}
		blobs = append(blobs, content.Blob{Digest: d, Size: int64(len(b)), MediaType: mt})
	}
	im.raw = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		content.MediaTypeOCIManifest, blobs[0].MediaType, blobs[0].Digest, blobs[0].Size, blobs[1].MediaType, blobs[1].Digest, blobs[1].Size))
	doc, err := content.Parse(content.MediaTypeOCIManifest, im.raw)
	if err != nil {
		e.t.Fatal(err)
	}
	if im.blobs, err = e.repos.PutBlobs(ctx, blobs); err != nil {
		e.t.Fatal(err)
	}
	if im.manifest, err = e.repos.PutDocument(ctx, doc); err != nil {
		e.t.Fatal(err)
	}
	return im
}

// putList stores a Docker manifest list of images for the given platforms.
func (e *env) putList(children []image, archs []string) (*repository.Content, []byte) {
	e.t.Helper()
	var entries []string
	for i, c := range children {
		entries = append(entries, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":%q,"os":"linux"}}`,
			content.MediaTypeOCIManifest, c.manifest.Digest, len(c.raw), archs[i]))
	}
	raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, content.MediaTypeDockerManifestList, strings.Join(entries, ",")))
	doc, err := content.Parse(content.MediaTypeDockerManifestList, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.repos.PutDocument(context.Background(), doc)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, raw
}

func (e *env) tag(name string, target *repository.Content) int64 {
	e.t.Helper()
	c, err := e.repos.PutTag(context.Background(), name, target)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

func (im image) ids() []int64 {
	ids := []int64{im.manifest.ID}
	for _, b := range im.blobs {
		ids = append(ids, b.ID)
	}
	return ids
}

func (e *env) newVersion(repoID string, add ...int64) *repository.Version {
	e.t.Helper()
	v, err := e.repos.NewVersion(context.Background(), repoID, repository.Change{Add: add})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// createRepo creates a repository through the API and returns its id and href.
func (e *env) createRepo(name string) (id, href string) {
	e.t.Helper()
	r := e.call("POST", "/pulp/api/v3/repositories/", map[string]any{"name": name})
	if r.status != http.StatusCreated {
		e.t.Fatalf("create repository: %d %s", r.status, r.body)
	}
	href = r.json(e.t)["_href"].(string)
	return strings.TrimSuffix(strings.TrimPrefix(href, "/pulp/api/v3/repositories/"), "/"), href
}

func (e *env) runner(t *testing.T) {
	t.Helper()
	r := e.srv.NewRunner(task.Options{Workers: 2, PollInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// deleteAsync deletes a repository or version (href) through its task,
// running tasks for it, and fails the test unless the task completes.
func (e *env) deleteAsync(href string) {
	e.t.Helper()
	e.startRunner()
	r := e.call("DELETE", href, nil)
	if r.status != http.StatusAccepted {
		e.t.Fatalf("DELETE %s: %d %s, want 202", href, r.status, r.body)
	}
	if tk := e.waitTask(r.json(e.t)["task"].(string)); tk["state"] != "completed" {
		e.t.Fatalf("DELETE %s: task %v", href, tk)
	}
}

// startRunner runs tasks for the rest of the test, once.
func (e *env) startRunner() {
	if !e.running {
		e.running = true
		e.runner(e.t)
	}
}

// waitTask polls a task until it is finished and returns it.
func (e *env) waitTask(href string) map[string]any {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tk := e.call("GET", href, nil).json(e.t)
		if s := tk["state"]; s == "completed" || s == "failed" || s == "canceled" {
			return tk
		}
	}
	e.t.Fatalf("task %s did not finish", href)
	return nil
}

func repositoryChange(add, remove []int64) repository.Change {
	return repository.Change{Add: add, Remove: remove}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
