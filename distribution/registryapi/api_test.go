package registryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution/registryapi"
)

// The handler on a mux of its own, with an Authenticator of the embedding
// program's: it is asked on the version check and before every pull, push
// and delete; what it refuses is answered 401 with the configured
// challenge.
func TestAuthenticatorHook(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := mooring.Open(ctx, filepath.Join(dir, "db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var asked []registryapi.Access
	auth := registryapi.AuthenticatorFunc(func(r *http.Request, a registryapi.Access) error {
		asked = append(asked, a)
		if a.Action == registryapi.ActionPull {
			return nil // anybody pulls
		}
		if r.Header.Get("X-Token") != "let-me-in" {
			return errdef.New(errdef.ErrUnauthenticated, "no token")
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("/v2/", m.RegistryHandler(registryapi.Options{Auth: auth, Challenge: `Bearer realm="test"`}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	blob := []byte("hello")
	d := digest.FromBytes(blob)
	do := func(method, path string, token string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("X-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		method, path, token string
		body                []byte
		want                int
	}{
		{"GET", "/v2/", "", nil, http.StatusUnauthorized},
		{"GET", "/v2/", "let-me-in", nil, http.StatusOK},
		{"POST", "/v2/team/app/blobs/uploads/?digest=" + d.String(), "wrong", blob, http.StatusUnauthorized},
		{"POST", "/v2/team/app/blobs/uploads/?digest=" + d.String(), "let-me-in", blob, http.StatusCreated},
		{"GET", "/v2/team/app/blobs/" + d.String(), "", nil, http.StatusOK}, // pulls stay anonymous
		{"DELETE", "/v2/team/app/blobs/" + d.String(), "", nil, http.StatusUnauthorized},
	} {
		resp := do(c.method, c.path, c.token, c.body)
		if resp.StatusCode != c.want {
			t.Errorf("%s %s (token %q): %s, want %d", c.method, c.path, c.token, resp.Status, c.want)
		}
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Bearer realm="test"` {
			t.Errorf("%s %s: challenge %q", c.method, c.path, resp.Header.Get("WWW-Authenticate"))
		}
	}
	want := []registryapi.Access{{}, {}, {Name: "team/app", Action: "push"}, {Name: "team/app", Action: "push"}, {Name: "team/app", Action: "pull"}, {Name: "team/app", Action: "delete"}}
	if got, _ := json.Marshal(asked); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("the hook was asked %s, want %s", got, must(json.Marshal(want)))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A chunked PATCH whose body runs past its Content-Range is refused with
// 416, also when the client declared no Content-Length.
func TestPatchLongerThanRange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := mooring.Open(ctx, filepath.Join(dir, "db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(m.RegistryHandler(registryapi.Options{
		Auth: registryapi.AuthenticatorFunc(func(*http.Request, registryapi.Access) error { return nil })}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v2/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	req, _ := http.NewRequest("PATCH", srv.URL+loc, io.MultiReader(strings.NewReader("0123456789")))
	req.Header.Set("Content-Range", "0-4")
	req.ContentLength = -1 // chunked
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("PATCH of 10 bytes with Content-Range 0-4: %s, want 416", resp.Status)
	}
}
