package server_test

import (
	"bytes"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

// registryFixture is a repository with two versions served at two base
// paths: "lib/foo" follows the latest, "pinned" serves version 1.
type registryFixture struct {
	a, b     image
	list     []byte
	listDig  digest.Digest
	repoHref string
}

func newRegistryFixture(t *testing.T, e *env) registryFixture {
	t.Helper()
	id, href := e.createRepo("foo")
	var f registryFixture
	f.repoHref = href
	f.a = e.putImage("a", bytes.Repeat([]byte("A"), 100000))
	f.b = e.putImage("b", []byte("layer b"))
	list, raw := e.putList([]image{f.a, f.b}, []string{"amd64", "arm64"})
	f.list, f.listDig = raw, list.Digest
	add := append(f.a.ids(), e.tag("v1", f.a.manifest))
	e.newVersion(id, add...)
	add = append(f.b.ids(), list.ID, e.tag("latest", list), e.tag("v2", f.b.manifest))
	for i := range 3 {
		add = append(add, e.tag("extra"+strconv.Itoa(i), f.b.manifest))
	}
	e.newVersion(id, add...)
	for _, d := range []map[string]any{
		{"name": "follow", "base_path": "lib/foo", "repository": href},
		{"name": "pin", "base_path": "pinned", "repository_version": href + "versions/1/"},
	} {
		if r := e.call("POST", "/pulp/api/v3/docker-distributions/", d); r.status != http.StatusCreated {
			t.Fatalf("distribution: %d %s", r.status, r.body)
		}
	}
	return f
}

func TestRegistryManifests(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		f := newRegistryFixture(t, e)

		// The version check is where clients learn how to authenticate:
		// 401 with a Bearer challenge naming the token endpoint without
		// credentials, 200 with them. Pulls below stay anonymous.
		for _, p := range []string{"/v2/", "/v2"} {
			r := e.get("GET", p)
			if r.status != http.StatusUnauthorized || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" ||
				r.header.Get("WWW-Authenticate") != `Bearer realm="`+e.content.URL+`/token/",service="mooring"` {
				t.Errorf("%s anonymously: %d %v", p, r.status, r.header)
			}
			r = e.push("GET", p, nil)
			if r.status != http.StatusOK || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
				t.Errorf("%s as admin: %d %v", p, r.status, r.header)
			}
		}

		for _, c := range []struct {
			path, accept string
			want         []byte
			mediaType    string
		}{
			{"/v2/lib/foo/manifests/v1", "", f.a.raw, content.MediaTypeOCIManifest},
			{"/v2/lib/foo/manifests/" + f.a.manifest.Digest.String(), content.MediaTypeOCIManifest, f.a.raw, content.MediaTypeOCIManifest},
			{"/v2/lib/foo/manifests/latest", content.MediaTypeDockerManifestList + ", " + content.MediaTypeOCIManifest, f.list, content.MediaTypeDockerManifestList},
			{"/v2/lib/foo/manifests/latest", "*/*", f.list, content.MediaTypeDockerManifestList},
			// A client that cannot read lists gets the linux/amd64 image.
			{"/v2/lib/foo/manifests/latest", content.MediaTypeOCIManifest, f.a.raw, content.MediaTypeOCIManifest},
			// By digest the stored bytes are served whatever Accept says.
			{"/v2/lib/foo/manifests/" + f.listDig.String(), content.MediaTypeDockerManifest, f.list, content.MediaTypeDockerManifestList},
			{"/v2/pinned/manifests/v1", "", f.a.raw, content.MediaTypeOCIManifest},
		} {
			for _, method := range []string{"GET", "HEAD"} {
				r := e.get(method, c.path, "Accept", c.accept)
				d := digest.FromBytes(c.want)
				if r.status != http.StatusOK || r.header.Get("Content-Type") != c.mediaType ||
					r.header.Get("Docker-Content-Digest") != d.String() || r.header.Get("ETag") != `"`+d.String()+`"` ||
					r.header.Get("Content-Length") != strconv.Itoa(len(c.want)) {
					t.Errorf("%s %s (Accept %q): %d %v", method, c.path, c.accept, r.status, r.header)
				}
				if method == "GET" && !bytes.Equal(r.body, c.want) {
					t.Errorf("GET %s: body differs from the stored bytes", c.path)
				}
				if method == "HEAD" && len(r.body) != 0 {
					t.Errorf("HEAD %s has a body", c.path)
				}
			}
		}
		r := e.get("GET", "/v2/lib/foo/manifests/v1", "If-None-Match", `"`+f.a.manifest.Digest.String()+`"`)
		if r.status != http.StatusNotModified {
			t.Errorf("If-None-Match: %d", r.status)
		}

		for _, c := range []struct {
			method, path string
			status       int
			code         string
		}{
			{"GET", "/v2/nothere/manifests/v1", 404, "NAME_UNKNOWN"},
			{"GET", "/v2/lib/manifests/v1", 404, "NAME_UNKNOWN"},
			{"GET", "/v2/lib/foo/manifests/nope", 404, "MANIFEST_UNKNOWN"},
			{"HEAD", "/v2/lib/foo/manifests/nope", 404, ""},
			{"GET", "/v2/pinned/manifests/v2", 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/pinned/manifests/" + f.listDig.String(), 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/lib/foo/manifests/sha256:" + strings.Repeat("0", 64), 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/lib/foo/manifests/-bad-tag", 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/lib/foo/manifests/" + strings.Repeat("t", 200), 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/Lib/foo/manifests/v1", 400, "NAME_INVALID"},
			{"GET", "/v2/lib//foo/manifests/v1", 400, "NAME_INVALID"},
			// Anonymous pushes and deletes are refused with a challenge.
			{"PUT", "/v2/lib/foo/manifests/v1", 401, "UNAUTHORIZED"},
			{"DELETE", "/v2/lib/foo/manifests/v1", 401, "UNAUTHORIZED"},
			{"POST", "/v2/lib/foo/blobs/uploads/", 401, "UNAUTHORIZED"},
			{"GET", "/v2/lib/foo/blobs/uploads/x", 401, "UNAUTHORIZED"},
			{"PUT", "/v2/", 405, "UNSUPPORTED"},
			{"GET", "/elsewhere", 404, "NAME_UNKNOWN"},
		} {
			r := e.get(c.method, c.path)
			if r.status != c.status {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.body, c.status)
				continue
			}
			if c.code != "" {
				if got := registryError(t, r); got != c.code {
					t.Errorf("%s %s: code %s, want %s", c.method, c.path, got, c.code)
				}
			}
		}
	})
}

func TestRegistryTagsAndCatalog(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		newRegistryFixture(t, e)
		type tagList struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		var all tagList
		r := e.get("GET", "/v2/lib/foo/tags/list")
		decodeInto(t, r, &all)
		if all.Name != "lib/foo" || !reflect.DeepEqual(all.Tags, []string{"extra0", "extra1", "extra2", "latest", "v1", "v2"}) {
			t.Errorf("tags: %+v", all)
		}
		// Paging with n and last, following Link.
		var got []string
		path := "/v2/lib/foo/tags/list?n=4"
		for path != "" {
			r := e.get("GET", path)
			var page tagList
			decodeInto(t, r, &page)
			got = append(got, page.Tags...)
			path = ""
			if link := r.header.Get("Link"); link != "" {
				path = strings.TrimSuffix(strings.TrimPrefix(strings.Split(link, ";")[0], "<"), ">")
			}
		}
		if !reflect.DeepEqual(got, all.Tags) {
			t.Errorf("paged tags %v", got)
		}
		var pinned tagList
		decodeInto(t, e.get("GET", "/v2/pinned/tags/list?last=a"), &pinned)
		if !reflect.DeepEqual(pinned.Tags, []string{"v1"}) {
			t.Errorf("pinned tags %v", pinned.Tags)
		}
		if r := e.get("GET", "/v2/lib/foo/tags/list?n=x"); r.status != http.StatusBadRequest {
			t.Errorf("n=x: %d", r.status)
		}
		if r := e.get("GET", "/v2/none/tags/list"); r.status != http.StatusNotFound || registryError(t, r) != "NAME_UNKNOWN" {
			t.Errorf("unknown name: %d", r.status)
		}
		var cat struct {
			Repositories []string `json:"repositories"`
		}
		r = e.get("GET", "/v2/_catalog?n=1")
		decodeInto(t, r, &cat)
		if !reflect.DeepEqual(cat.Repositories, []string{"lib/foo"}) || !strings.Contains(r.header.Get("Link"), "last=lib%2Ffoo") {
			t.Errorf("catalog page 1: %v %q", cat, r.header.Get("Link"))
		}
		decodeInto(t, e.get("GET", "/v2/_catalog?n=5&last=lib/foo"), &cat)
		if !reflect.DeepEqual(cat.Repositories, []string{"pinned"}) {
			t.Errorf("catalog page 2: %v", cat)
		}
	})
}

func TestRegistryBlobs(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		f := newRegistryFixture(t, e)
		layer := f.a.layers[1]
		d := digest.FromBytes(layer)
		path := "/v2/lib/foo/blobs/" + d.String()
		r := e.get("GET", path)
		if r.status != http.StatusOK || !bytes.Equal(r.body, layer) || r.header.Get("Docker-Content-Digest") != d.String() ||
			r.header.Get("Content-Length") != strconv.Itoa(len(layer)) {
			t.Errorf("GET blob: %d %v", r.status, r.header)
		}
		r = e.get("HEAD", path)
		if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(len(layer)) {
			t.Errorf("HEAD blob: %d %v", r.status, r.header)
		}
		r = e.get("GET", path, "Range", "bytes=10-19")
		if r.status != http.StatusPartialContent || !bytes.Equal(r.body, layer[10:20]) ||
			r.header.Get("Content-Range") != "bytes 10-19/"+strconv.Itoa(len(layer)) {
			t.Errorf("Range: %d %v", r.status, r.header)
		}
		if r := e.get("GET", path, "Range", "bytes=999999-"); r.status != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("unsatisfiable range: %d", r.status)
		}
		// A manifest is served from the blobs endpoint too.
		r = e.get("GET", "/v2/lib/foo/blobs/"+f.listDig.String())
		if r.status != http.StatusOK || !bytes.Equal(r.body, f.list) {
			t.Errorf("manifest as blob: %d", r.status)
		}
		for _, c := range []struct {
			path   string
			status int
			code   string
		}{
			// Version 1 does not hold b's layer.
			{"/v2/pinned/blobs/" + digest.FromBytes(f.b.layers[1]).String(), 404, "BLOB_UNKNOWN"},
			{"/v2/lib/foo/blobs/sha256:" + strings.Repeat("a", 64), 404, "BLOB_UNKNOWN"},
			{"/v2/lib/foo/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
			{"/v2/lib/foo/blobs/md5:" + strings.Repeat("a", 32), 400, "DIGEST_INVALID"},
			{"/v2/nothere/blobs/" + d.String(), 404, "NAME_UNKNOWN"},
		} {
			r := e.get("GET", c.path)
			if r.status != c.status || registryError(t, r) != c.code {
				t.Errorf("GET %s: %d %s, want %d %s", c.path, r.status, r.body, c.status, c.code)
			}
		}
		// The distribution that follows the repository sees a new version.
		if r := e.call("PATCH", f.repoHref, map[string]any{"description": "x"}); r.status != http.StatusOK {
			t.Fatal(r.status)
		}
		e.deleteAsync(f.repoHref + "versions/2/")
		if r := e.get("GET", "/v2/lib/foo/manifests/latest"); r.status != http.StatusNotFound {
			t.Errorf("latest after its version was deleted: %d", r.status)
		}
	})
}

func decodeInto(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := jsonUnmarshal(r.body, v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
}
