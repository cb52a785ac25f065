package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestOnDemandREST: a remote with policy on_demand syncs a repository
// whose layers are fetched when pulled; the remote cannot be deleted
// (409) while they are needed; reclaim_space is a task that gives stored
// bytes back, after which pulls fetch them again.
func TestOnDemandREST(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.runner(t)
		ctx := context.Background()
		upstream := regtest.StartInProcess(t)
		if _, err := regtest.PushImage(ctx, upstream, "app", "v1", regtest.ImageOpts{Seed: "rest-lazy", Layers: 2}); err != nil {
			t.Fatal(err)
		}
		rm := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "app", "url": "http://" + upstream,
			"upstream_name": "app", "policy": "on_demand"})
		if rm.status != http.StatusCreated || rm.json(t)["policy"] != "on_demand" {
			t.Fatalf("create remote: %d %s", rm.status, rm.body)
		}
		remoteHref := rm.json(t)["_href"].(string)
		repoID, repoHref := e.createRepo("lazy")
		tk := e.call("POST", remoteHref+"sync/", map[string]any{"repository": repoHref})
		if st := e.waitTask(tk.json(t)["task"].(string)); st["state"] != "completed" {
			t.Fatalf("sync: %v", st)
		}
		e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "lazy", "base_path": "lazy", "repository": repoHref})
		layer := regtest.LayerDescriptor("rest-lazy", 1, 1024, "").Digest
		if _, err := e.blobs.Stat(ctx, layer); err == nil {
			t.Fatal("an on_demand sync downloaded a layer")
		}

		del := e.call("DELETE", remoteHref, nil)
		if del.status != http.StatusConflict || !strings.Contains(string(del.body), `\"lazy\"`) {
			t.Errorf("delete a remote on-demand content needs: %d %s, want 409 naming repository lazy", del.status, del.body)
		}
		if r := e.get("GET", "/v2/lazy/blobs/"+layer.String()); r.status != http.StatusOK || digest.FromBytes(r.body) != layer {
			t.Fatalf("pull an on-demand layer: %d", r.status)
		}

		for _, bad := range []map[string]any{
			{}, {"repo_hrefs": []string{}}, {"repo_hrefs": []string{"/pulp/api/v3/remotes/docker/docker/" + repoID + "/"}},
			{"repo_hrefs": []string{"/pulp/api/v3/repositories/00000000-0000-4000-8000-000000000000/"}},
			{"repo_hrefs": []string{repoHref}, "repo_versions_keeplist": []string{repoHref + "versions/7/"}},
		} {
			if r := e.call("POST", "/pulp/api/v3/repositories/reclaim_space/", bad); r.status != http.StatusBadRequest {
				t.Errorf("reclaim %v: %d %s, want 400", bad, r.status, r.body)
			}
		}
		// The pull stores the layer as its download ends, which may be
		// just after the client has it: reclaim what is stored.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := e.blobs.Stat(ctx, layer); err == nil {
				break
			}
		}
		rc := e.call("POST", "/pulp/api/v3/repositories/reclaim_space/", map[string]any{"repo_hrefs": []string{repoHref}})
		if rc.status != http.StatusAccepted {
			t.Fatalf("reclaim: %d %s", rc.status, rc.body)
		}
		if st := e.waitTask(rc.json(t)["task"].(string)); st["state"] != "completed" {
			t.Fatalf("reclaim task: %v", st)
		}
		for _, d := range []digest.Digest{layer, regtest.LayerDescriptor("rest-lazy", 0, 1024, "").Digest} {
			if _, err := e.blobs.Stat(ctx, d); err == nil {
				t.Errorf("blob %s kept its bytes after reclaim", d)
			}
			if r := e.get("GET", "/v2/lazy/blobs/"+d.String()); r.status != http.StatusOK || digest.FromBytes(r.body) != d {
				t.Errorf("pull after reclaim: %d", r.status)
			}
		}
		if v := e.call("GET", repoHref+"versions/", nil).json(t); v["count"] != 2.0 {
			t.Errorf("reclaim changed the versions: %v", v)
		}
		// The pulls after reclaim store the layers again as their downloads
		// end (on_demand): wait for that, which also lets the stores finish
		// before the test's storage directory goes.
		for _, d := range []digest.Digest{layer, regtest.LayerDescriptor("rest-lazy", 0, 1024, "").Digest} {
			var err error
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, err = e.blobs.Stat(ctx, d); err == nil {
					break
				}
			}
			if err != nil {
				t.Errorf("blob %s pulled after reclaim was not stored again: %v", d, err)
			}
		}
	})
}

// TestPullThroughREST: pull-through remotes and distributions through the
// REST API (Pulp's shapes, validated against the OpenAPI document), and a
// first pull through the registry that makes the cache's repository.
func TestPullThroughREST(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		upstream := regtest.StartInProcess(t)
		want, err := regtest.PushImage(ctx, upstream, "library/busybox", "latest", regtest.ImageOpts{Seed: "rest-pt"})
		if err != nil {
			t.Fatal(err)
		}
		const remotes = "/pulp/api/v3/remotes/docker/pull-through/"
		for _, bad := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"url": "http://" + upstream}, "name"},
			{map[string]any{"name": "hub", "url": "ftp://x"}, "url"},
			{map[string]any{"name": "hub", "url": "http://x", "policy": "immediate"}, "policy"},
			{map[string]any{"name": "hub", "url": "http://x", "includes": []string{""}}, "includes"},
			{map[string]any{"name": "hub", "url": "http://x", "upstream_name": "x"}, "upstream_name"},
		} {
			if r := e.call("POST", remotes, bad.body); r.status != http.StatusBadRequest || r.json(t)[bad.field] == nil {
				t.Errorf("POST %v: %d %s, want 400 about %s", bad.body, r.status, r.body, bad.field)
			}
		}
		r := e.call("POST", remotes, map[string]any{"name": "hub", "url": "http://" + upstream, "excludes": []string{"private/*"},
			"username": "u", "password": "hunter2"})
		if r.status != http.StatusCreated || strings.Contains(string(r.body), "hunter2") {
			t.Fatalf("create pull-through remote: %d %s", r.status, r.body)
		}
		ptr := r.json(t)
		if ptr["policy"] != "on_demand" {
			t.Errorf("pull-through remote %v", ptr)
		}
		if r := e.call("PATCH", ptr["_href"].(string), map[string]any{"username": nil, "password": nil}); r.status != http.StatusOK || r.json(t)["username"] != nil {
			t.Errorf("PATCH: %d %s", r.status, r.body)
		}
		if r := e.call("GET", remotes+"?name=hub", nil); r.status != http.StatusOK || r.json(t)["count"] != 1.0 {
			t.Errorf("list: %d %s", r.status, r.body)
		}

		const dists = "/pulp/api/v3/docker-pull-through-distributions/"
		for _, bad := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "hub", "base_path": "hub"}, "remote"},
			{map[string]any{"name": "hub", "base_path": "hub", "remote": remotes + "00000000-0000-4000-8000-000000000000/"}, "remote"},
			{map[string]any{"name": "hub", "base_path": "Hub!", "remote": ptr["_href"]}, "base_path"},
			{map[string]any{"name": "hub", "base_path": "hub", "remote": ptr["_href"], "tag_ttl": -1}, "tag_ttl"},
			{map[string]any{"name": "hub", "base_path": "hub", "remote": ptr["_href"], "max_size": 0}, "max_size"},
		} {
			if r := e.call("POST", dists, bad.body); r.status != http.StatusBadRequest || r.json(t)[bad.field] == nil {
				t.Errorf("POST %v: %d %s, want 400 about %s", bad.body, r.status, r.body, bad.field)
			}
		}
		r = e.call("POST", dists, map[string]any{"name": "hub", "base_path": "hub", "remote": ptr["_href"]})
		if r.status != http.StatusCreated {
			t.Fatalf("create pull-through distribution: %d %s", r.status, r.body)
		}
		pt := r.json(t)
		if pt["tag_ttl"] != 300.0 || pt["max_size"] != nil || !strings.HasSuffix(pt["registry_path"].(string), "/hub") {
			t.Errorf("pull-through distribution %v", pt)
		}
		if r := e.call("PATCH", pt["_href"].(string), map[string]any{"tag_ttl": 60, "max_size": 1 << 30}); r.status != http.StatusOK || r.json(t)["max_size"] != float64(1<<30) {
			t.Errorf("PATCH: %d %s", r.status, r.body)
		}
		if r := e.call("POST", dists, map[string]any{"name": "hub2", "base_path": "hub/x", "remote": ptr["_href"]}); r.status != http.StatusBadRequest || r.json(t)["base_path"] == nil {
			t.Errorf("an overlapping base path: %d %s", r.status, r.body)
		}

		// A first pull, anonymous, makes the cache's repository.
		m := e.get("GET", "/v2/hub/library/busybox/manifests/latest", "Accept", want.MediaType)
		if m.status != http.StatusOK || digest.FromBytes(m.body) != want.Digest {
			t.Fatalf("first pull: %d %s", m.status, m.body)
		}
		if r := e.get("GET", "/v2/hub/private/thing/manifests/latest"); r.status != http.StatusNotFound {
			t.Errorf("an excluded name: %d %s", r.status, r.body)
		}
		ds := e.call("GET", "/pulp/api/v3/docker-distributions/?base_path=hub/library/busybox", nil).json(t)
		if ds["count"] != 1.0 {
			t.Errorf("the cache's distribution: %v", ds)
		}
		if r := e.call("DELETE", ptr["_href"].(string), nil); r.status != http.StatusConflict {
			t.Errorf("delete a pull-through remote in use: %d %s", r.status, r.body)
		}
		if r := e.call("DELETE", pt["_href"].(string), nil); r.status != http.StatusNoContent {
			t.Errorf("delete: %d %s", r.status, r.body)
		}
		if r := e.call("DELETE", ptr["_href"].(string), nil); r.status != http.StatusNoContent {
			t.Errorf("delete: %d %s", r.status, r.body)
		}
		if r := e.get("GET", "/v2/hub/library/busybox/manifests/latest"); r.status != http.StatusNotFound {
			t.Errorf("after the cache is deleted: %d", r.status)
		}
	})
}
