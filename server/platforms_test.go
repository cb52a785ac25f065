package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
)

var fourPlatforms = []ocispec.Platform{
	{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "s390x"},
}

// TestIncludePlatformsREST: include_platforms through the REST API (shown,
// changed, refused with a 400 naming the field when malformed); a sync
// keeps the index with the upstream's bytes and digest, the registry
// serves it and the children kept, and answers MANIFEST_UNKNOWN saying
// why for the others; the content listing shows which entries are
// present.
func TestIncludePlatformsREST(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.runner(t)
		upstream := regtest.StartInProcess(t)
		mp, err := regtest.PushMultiPlatform(context.Background(), upstream, "app", "1.0", "rest", fourPlatforms...)
		if err != nil {
			t.Fatal(err)
		}
		const path = "/pulp/api/v3/remotes/docker/docker/"
		for _, bad := range []any{[]string{"linux"}, []string{"linux/amd64", "Linux/ARM64"}, "linux/amd64, linux//v7", []int{1}} {
			r := e.call("POST", path, map[string]any{"name": "bad", "upstream_name": "app", "url": "http://" + upstream, "include_platforms": bad})
			if r.status != http.StatusBadRequest || r.json(t)["include_platforms"] == nil {
				t.Errorf("include_platforms %v: %d %s, want 400 about include_platforms", bad, r.status, r.body)
			}
		}
		r := e.call("POST", path, map[string]any{"name": "app", "upstream_name": "app", "url": "http://" + upstream})
		if r.status != http.StatusCreated || !reflect.DeepEqual(r.json(t)["include_platforms"], []any{}) {
			t.Fatalf("create remote: %d %s; want include_platforms []", r.status, r.body)
		}
		rhref := r.json(t)["_href"].(string)
		r = e.call("PATCH", rhref, map[string]any{"include_platforms": "linux/amd64, linux/arm64/v8"})
		if r.status != http.StatusOK || !reflect.DeepEqual(r.json(t)["include_platforms"], []any{"linux/amd64", "linux/arm64/v8"}) {
			t.Fatalf("PATCH include_platforms: %d %s", r.status, r.body)
		}
		if r := e.call("PATCH", rhref, map[string]any{"include_platforms": []string{"linux/amd64/"}}); r.status != http.StatusBadRequest {
			t.Errorf("PATCH a malformed include_platforms: %d %s", r.status, r.body)
		}

		_, repo := e.createRepo("app")
		tk := e.waitTask(e.call("POST", rhref+"sync/", map[string]any{"repository": repo}).json(t)["task"].(string))
		if tk["state"] != "completed" {
			t.Fatalf("sync: %v", tk)
		}
		if r := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "app", "base_path": "app", "repository": repo}); r.status != http.StatusCreated {
			t.Fatalf("distribution: %d %s", r.status, r.body)
		}
		accept := strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest}, ", ")
		for _, ref := range []string{"1.0", mp.Index.Digest.String()} {
			r := e.get("GET", "/v2/app/manifests/"+ref, "Accept", accept)
			if r.status != http.StatusOK || !bytes.Equal(r.body, mp.Raw) || r.header.Get("Docker-Content-Digest") != mp.Index.Digest.String() {
				t.Errorf("GET the index by %s: %d, digest %s; want the upstream's bytes and %s", ref, r.status, r.header.Get("Docker-Content-Digest"), mp.Index.Digest)
			}
		}
		for i, img := range mp.Images {
			for _, d := range []string{img.Digest.String(), mp.Attestations[i].Digest.String()} {
				r := e.get("GET", "/v2/app/manifests/"+d, "Accept", accept)
				if i < 2 {
					if r.status != http.StatusOK {
						t.Errorf("GET kept child %s (%s): %d %s", d, img.Platform.Architecture, r.status, r.body)
					}
					continue
				}
				if r.status != http.StatusNotFound || registryError(t, r) != "MANIFEST_UNKNOWN" ||
					!strings.Contains(string(r.body), "manifest "+d+" was filtered out by the remote's platform filter") {
					t.Errorf("GET filtered child %s (%s): %d %s; want MANIFEST_UNKNOWN saying it was filtered out", d, img.Platform.Architecture, r.status, r.body)
				}
			}
		}
		// A digest no list names is plainly unknown.
		if r := e.get("GET", "/v2/app/manifests/sha256:"+strings.Repeat("0", 64), "Accept", accept); r.status != http.StatusNotFound || strings.Contains(string(r.body), "filtered") {
			t.Errorf("GET an unknown digest: %d %s", r.status, r.body)
		}

		v1 := repo + "versions/1/"
		lists := e.call("GET", "/pulp/api/v3/content/docker/manifest-lists/?repository_version="+url.QueryEscape(v1), nil).json(t)["results"].([]any)
		if len(lists) != 1 {
			t.Fatalf("lists in version 1: %v", lists)
		}
		l := lists[0].(map[string]any)
		entries := l["entries"].([]any)
		if l["digest"] != mp.Index.Digest.String() || l["manifests_present"] != 4.0 || l["manifests_missing"] != 4.0 || len(entries) != 8 {
			t.Errorf("list %s: %v present, %v missing, %d entries; want 4, 4, 8", l["digest"], l["manifests_present"], l["manifests_missing"], len(entries))
		}
		for i, want := range []struct {
			platform string
			present  bool
		}{{"linux/amd64", true}, {"unknown/unknown", true}, {"linux/arm64/v8", true}, {"unknown/unknown", true},
			{"linux/arm/v7", false}, {"unknown/unknown", false}, {"linux/s390x", false}, {"unknown/unknown", false}} {
			en := entries[i].(map[string]any)
			href, _ := en["manifest"].(string)
			if en["platform"] != want.platform || en["present"] != want.present || (href != "") != want.present {
				t.Errorf("entry %d: %v; want platform %s, present %v", i, en, want.platform, want.present)
			}
		}
		if href, _ := entries[2].(map[string]any)["manifest"].(string); href != "" {
			if m := e.call("GET", href, nil).json(t); m["digest"] != mp.Images[1].Digest.String() {
				t.Errorf("entry 2 links %v, want the arm64 image", m["digest"])
			}
		}
		// Without a version filter, present means stored.
		all := e.call("GET", "/pulp/api/v3/content/docker/manifest-lists/", nil).json(t)["results"].([]any)
		if len(all) != 1 || all[0].(map[string]any)["manifests_present"] != 4.0 {
			t.Errorf("unfiltered listing: %v", all)
		}

		// Widen the filter: the next sync adds the children.
		e.call("PATCH", rhref, map[string]any{"include_platforms": []string{}})
		if tk := e.waitTask(e.call("POST", rhref+"sync/", map[string]any{"repository": repo}).json(t)["task"].(string)); tk["state"] != "completed" {
			t.Fatalf("sync: %v", tk)
		}
		if r := e.get("GET", "/v2/app/manifests/"+mp.Images[3].Digest.String(), "Accept", accept); r.status != http.StatusOK {
			t.Errorf("GET the s390x child after an unfiltered sync: %d %s", r.status, r.body)
		}

		// A client that reads no lists gets the list's linux/amd64 image
		// for a tag, while there is one; a mirror sync without amd64
		// takes it away, and the answer says why.
		imageOnly := ocispec.MediaTypeImageManifest
		if r := e.get("GET", "/v2/app/manifests/1.0", "Accept", imageOnly); r.status != http.StatusOK || r.header.Get("Docker-Content-Digest") != mp.Images[0].Digest.String() {
			t.Errorf("GET 1.0 accepting only image manifests: %d %s, want the amd64 image", r.status, r.header.Get("Docker-Content-Digest"))
		}
		e.call("PATCH", rhref, map[string]any{"include_platforms": []string{"linux/arm64"}})
		if tk := e.waitTask(e.call("POST", rhref+"sync/", map[string]any{"repository": repo, "mirror": true}).json(t)["task"].(string)); tk["state"] != "completed" {
			t.Fatalf("mirror sync: %v", tk)
		}
		for _, ref := range []string{"1.0", mp.Images[0].Digest.String()} {
			r := e.get("GET", "/v2/app/manifests/"+ref, "Accept", imageOnly)
			if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "filtered out by the remote's platform filter") {
				t.Errorf("GET %s accepting only image manifests after a mirror sync without amd64: %d %s", ref, r.status, r.body)
			}
		}
		if r := e.get("GET", "/v2/app/manifests/"+mp.Images[1].Digest.String(), "Accept", accept); r.status != http.StatusOK {
			t.Errorf("GET the arm64 child after the mirror sync: %d %s", r.status, r.body)
		}
	})
}

// TestSparsePushedList: in a push repository a list whose child was
// deleted is served, and the child is plainly MANIFEST_UNKNOWN: no
// platform filter is to blame. A list pushed without its children is
// refused.
func TestSparsePushedList(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	ctx := context.Background()
	host := strings.TrimPrefix(e.content.URL, "http://")
	r, err := orasremote.NewRepository(host + "/team/multi")
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	r.Client = &auth.Client{Client: http.DefaultClient, Cache: auth.NewCache(),
		Credential: auth.StaticCredential(host, auth.Credential{Username: mooring.AdminUser, Password: password})}
	mp, err := regtest.PushMultiPlatformTo(ctx, r, "1.0", "pushed", fourPlatforms[:2]...)
	if err != nil {
		t.Fatal(err)
	}
	child := mp.Images[1].Digest.String()
	if r := e.push("DELETE", "/v2/team/multi/manifests/"+child, nil); r.status != http.StatusAccepted {
		t.Fatalf("DELETE child: %d %s", r.status, r.body)
	}
	accept := strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest}, ", ")
	if r := e.get("GET", "/v2/team/multi/manifests/1.0", "Accept", accept); r.status != http.StatusOK || !bytes.Equal(r.body, mp.Raw) {
		t.Errorf("GET the list: %d", r.status)
	}
	got := e.get("GET", "/v2/team/multi/manifests/"+child, "Accept", accept)
	if got.status != http.StatusNotFound || registryError(t, got) != "MANIFEST_UNKNOWN" || strings.Contains(string(got.body), "filter") {
		t.Errorf("GET the deleted child: %d %s; want MANIFEST_UNKNOWN without a word of filters", got.status, got.body)
	}

	// A list naming a manifest the repository lacks is refused.
	var index map[string]any
	json.Unmarshal(mp.Raw, &index)
	index["manifests"] = append(index["manifests"].([]any), map[string]any{"mediaType": ocispec.MediaTypeImageManifest,
		"digest": "sha256:" + strings.Repeat("1", 64), "size": 100, "platform": map[string]any{"os": "linux", "architecture": "riscv64"}})
	raw, _ := json.Marshal(index)
	if r := e.push("PUT", "/v2/team/multi/manifests/sparse", raw, "Content-Type", ocispec.MediaTypeImageIndex); r.status != http.StatusBadRequest {
		t.Errorf("PUT a list with a missing child: %d %s, want 400", r.status, r.body)
	}
}
