package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

func unitHref(c *repository.Content) string {
	kinds := map[content.Type]string{content.TypeManifest: "manifests", content.TypeBlob: "blobs", content.TypeManifestList: "manifest-lists",
		content.TypeManifestTag: "manifest-tags", content.TypeManifestListTag: "manifest-list-tags"}
	return "/pulp/api/v3/content/docker/" + kinds[c.Type] + "/" + c.UUID + "/"
}

// act posts a repository action, waits for its task and returns the
// version it created ("" for none).
func (e *env) act(repoHref, action string, body any) string {
	e.t.Helper()
	e.startRunner()
	r := e.call("POST", repoHref+action+"/", body)
	if r.status != http.StatusAccepted {
		e.t.Fatalf("%s: %d %s", action, r.status, r.body)
	}
	tk := e.waitTask(r.json(e.t)["task"].(string))
	if tk["state"] != "completed" {
		e.t.Fatalf("%s: task %v", action, tk)
	}
	created := tk["created_resources"].([]any)
	if len(created) == 0 {
		return ""
	}
	return created[0].(string)
}

// badAction posts a repository action that must be refused with 400
// about field, and returns the message.
func (e *env) badAction(repoHref, action string, body any, field string) string {
	e.t.Helper()
	r := e.call("POST", repoHref+action+"/", body)
	if r.status != http.StatusBadRequest {
		e.t.Fatalf("%s %v: %d %s, want 400 about %s", action, body, r.status, r.body, field)
	}
	msgs, ok := r.json(e.t)[field].([]any)
	if !ok || len(msgs) == 0 {
		e.t.Fatalf("%s %v: %s, want a message about %s", action, body, r.body, field)
	}
	return msgs[0].(string)
}

// present returns a version's present counts by type.
func (e *env) present(versionHref string) map[string]int {
	e.t.Helper()
	v := e.call("GET", versionHref, nil).json(e.t)
	out := map[string]int{}
	for t, entry := range v["content_summary"].(map[string]any)["present"].(map[string]any) {
		out[t] = int(entry.(map[string]any)["count"].(float64))
	}
	return out
}

func (e *env) tagsList(base string) []string {
	e.t.Helper()
	r := e.get("GET", "/v2/"+base+"/tags/list")
	if r.status != http.StatusOK {
		e.t.Fatalf("tags/list %s: %d %s", base, r.status, r.body)
	}
	var body struct {
		Tags []string `json:"tags"`
	}
	json.Unmarshal(r.body, &body)
	return body.Tags
}

// TestRepositoryActions drives every action through the REST API and
// checks what a client pulling from the registry sees.
func TestRepositoryActions(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		srcID, src := e.createRepo("src")
		_, dst := e.createRepo("dst")
		a, b := e.putImage("a", []byte("layer a")), e.putImage("b", []byte("layer b"))
		list, _ := e.putList([]image{a, b}, []string{"amd64", "arm64"})
		tagA, _ := e.repos.PutTag(t.Context(), "a", a.manifest)
		tagL, _ := e.repos.PutTag(t.Context(), "multi", list)
		e.newVersion(srcID, slices.Concat(a.ids(), b.ids(), []int64{list.ID, tagA.ID, tagL.ID})...)
		if r := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "dst", "base_path": "dst", "repository": dst}); r.status != http.StatusCreated {
			t.Fatalf("distribution: %d %s", r.status, r.body)
		}

		// Bad input: 400 naming the field, and no task.
		e.badAction(dst, "add", map[string]any{"content_units": []string{"/pulp/api/v3/content/docker/blobs/6a1f7c0e-0000-4000-8000-000000000000/"}}, "content_units")
		e.badAction(dst, "add", map[string]any{"content_units": []string{strings.Replace(unitHref(&a.blobs[0]), "/blobs/", "/manifests/", 1)}}, "content_units")
		e.badAction(dst, "add", map[string]any{"content_units": []string{"/pulp/api/v3/repositories/"}}, "content_units")
		e.badAction(dst, "add", map[string]any{}, "content_units")
		e.badAction(dst, "add", map[string]any{"content_units": "x"}, "content_units")
		e.badAction(src, "tag", map[string]any{"tag": "t", "digest": b.blobs[1].Digest}, "digest")
		e.badAction(src, "tag", map[string]any{"tag": "bad tag", "digest": a.manifest.Digest}, "tag")
		e.badAction(src, "tag", map[string]any{"tag": "t"}, "digest")
		e.badAction(src, "untag", map[string]any{"tag": "nope"}, "tag")
		e.badAction(dst, "copy_tags", map[string]any{"source_repository": src, "names": []string{"a", "nope"}}, "names")
		e.badAction(dst, "copy_tags", map[string]any{"names": []string{"a"}}, "source_repository")
		e.badAction(dst, "copy_tags", map[string]any{"source_repository_version": src + "versions/7/"}, "source_repository_version")
		e.badAction(dst, "copy_manifests", map[string]any{"source_repository": src, "digests": []string{b.blobs[0].Digest.String()}}, "digests")
		e.badAction(dst, "modify", map[string]any{"base_version": src + "versions/0/"}, "base_version")
		e.badAction(dst, "remove", map[string]any{"content_units": []string{"*", unitHref(a.manifest)}}, "content_units")
		e.badAction(dst, "tag", map[string]any{"tag": "t", "digest": a.manifest.Digest, "extra": 1}, "extra")
		if r := e.call("POST", "/pulp/api/v3/repositories/00000000-0000-4000-8000-000000000000/tag/", map[string]any{"tag": "t", "digest": a.manifest.Digest}); r.status != http.StatusNotFound {
			t.Errorf("tag in a repository that does not exist: %d %s", r.status, r.body)
		}
		if vs := e.call("GET", dst+"versions/", nil).json(t); vs["count"] != 1.0 {
			t.Fatalf("refused actions made versions: %v", vs["count"])
		}

		// copy_tags brings the list, its manifests and their blobs.
		v := e.act(dst, "copy_tags", map[string]any{"source_repository": src, "names": []string{"multi"}})
		if got := e.present(v); got["docker.manifest-list-tag"] != 1 || got["docker.manifest-list"] != 1 || got["docker.manifest"] != 2 || got["docker.manifest-blob"] != 4 {
			t.Errorf("after copy_tags multi: %v", got)
		}
		if got := e.tagsList("dst"); !slices.Equal(got, []string{"multi"}) {
			t.Errorf("registry tags after copy_tags: %v", got)
		}
		if r := e.get("GET", "/v2/dst/blobs/"+a.blobs[1].Digest.String()); r.status != http.StatusOK || string(r.body) != "layer a" {
			t.Errorf("a layer the copy brought: %d %q", r.status, r.body)
		}

		// tag and untag.
		e.act(dst, "tag", map[string]any{"tag": "amd", "digest": a.manifest.Digest})
		if got := e.tagsList("dst"); !slices.Equal(got, []string{"amd", "multi"}) {
			t.Errorf("registry tags after tag: %v", got)
		}
		if v := e.act(dst, "tag", map[string]any{"tag": "amd", "digest": a.manifest.Digest}); v != "" {
			t.Errorf("tagging again made version %s", v)
		}
		e.act(dst, "untag", map[string]any{"tag": "amd"})
		if r := e.get("GET", "/v2/dst/manifests/amd"); r.status != http.StatusNotFound {
			t.Errorf("untagged tag still pulls: %d", r.status)
		}

		// remove: the list's tag takes everything with it.
		v = e.act(dst, "remove", map[string]any{"content_units": []string{unitHref(tagL)}})
		if got := e.present(v); len(got) != 0 {
			t.Errorf("after removing the only tag: %v", got)
		}
		if r := e.get("GET", "/v2/dst/blobs/"+a.blobs[1].Digest.String()); r.status != http.StatusNotFound {
			t.Errorf("a removed layer still pulls: %d", r.status)
		}

		// add and copy_manifests, from a version.
		e.act(dst, "add", map[string]any{"content_units": []string{unitHref(b.manifest)}})
		v = e.act(dst, "copy_manifests", map[string]any{"source_repository_version": src + "versions/1/", "digests": []string{a.manifest.Digest.String()}})
		if got := e.present(v); got["docker.manifest"] != 2 || got["docker.manifest-blob"] != 4 || got["docker.manifest-tag"] != 0 {
			t.Errorf("after add b and copy a: %v", got)
		}
		// A manifest a list needs cannot be removed while the list stays.
		e.act(dst, "add", map[string]any{"content_units": []string{unitHref(list)}})
		msg := e.badActionTask(dst, "remove", map[string]any{"content_units": []string{unitHref(a.manifest)}})
		if !strings.Contains(msg, list.Digest.String()) {
			t.Errorf("refused removal says %q, want it to name the list", msg)
		}

		// modify from version 0: only b.
		v = e.act(dst, "modify", map[string]any{"base_version": dst + "versions/0/", "add_content_units": []string{unitHref(b.manifest)}})
		if got := e.present(v); got["docker.manifest"] != 1 || got["docker.manifest-blob"] != 2 || len(got) != 2 {
			t.Errorf("after modify: %v", got)
		}
		if base := e.call("GET", v, nil).json(t)["base_version"]; base != dst+"versions/0/" {
			t.Errorf("modify's version base_version = %v", base)
		}
		v = e.act(dst, "remove", map[string]any{"content_units": []string{"*"}})
		if got := e.present(v); len(got) != 0 {
			t.Errorf(`after remove ["*"]: %v`, got)
		}
	})
}

// badActionTask posts an action the SDK accepts but whose task must fail,
// and returns the task's error.
func (e *env) badActionTask(repoHref, action string, body any) string {
	e.t.Helper()
	r := e.call("POST", repoHref+action+"/", body)
	if r.status != http.StatusAccepted {
		e.t.Fatalf("%s: %d %s", action, r.status, r.body)
	}
	tk := e.waitTask(r.json(e.t)["task"].(string))
	if tk["state"] != "failed" {
		e.t.Fatalf("%s: task %v, want failed", action, tk)
	}
	return tk["error"].(map[string]any)["description"].(string)
}

// TestRetainAndDeletes: retain_repo_versions through the API, and deletes
// as tasks refused while a distribution serves what they would delete.
func TestRetainAndDeletes(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		r := e.call("POST", "/pulp/api/v3/repositories/", map[string]any{"name": "r", "retain_repo_versions": 2})
		if r.status != http.StatusCreated || r.json(t)["retain_repo_versions"] != 2.0 {
			t.Fatalf("create with retain_repo_versions: %d %s", r.status, r.body)
		}
		href := r.json(t)["_href"].(string)
		for _, bad := range []any{0, -1, "x"} {
			if r := e.call("PATCH", href, map[string]any{"retain_repo_versions": bad}); r.status != http.StatusBadRequest {
				t.Errorf("retain_repo_versions %v: %d", bad, r.status)
			}
		}
		for _, seed := range []string{"a", "b", "c"} {
			im := e.putImage(seed, []byte("layer "+seed))
			e.act(href, "add", map[string]any{"content_units": []string{unitHref(im.manifest)}})
		}
		vs := e.call("GET", href+"versions/", nil).json(t)
		if vs["count"] != 2.0 {
			t.Fatalf("versions with retain 2: %v", vs)
		}
		if got := e.present(href + "versions/3/"); got["docker.manifest"] != 3 {
			t.Errorf("latest version after retention: %v", got)
		}
		if r := e.call("PATCH", href, map[string]any{"retain_repo_versions": nil}); r.status != http.StatusOK || r.json(t)["retain_repo_versions"] != nil {
			t.Errorf("retain null: %d %s", r.status, r.body)
		}

		// Served: 409 naming the distribution; no task.
		e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "pinner", "base_path": "p", "repository_version": href + "versions/2/"})
		r = e.call("DELETE", href+"versions/2/", nil)
		if r.status != http.StatusConflict || !strings.Contains(r.json(t)["detail"].(string), `"pinner"`) {
			t.Errorf("delete a pinned version: %d %s", r.status, r.body)
		}
		r = e.call("DELETE", href, nil)
		if r.status != http.StatusConflict || !strings.Contains(r.json(t)["detail"].(string), `"pinner"`) {
			t.Errorf("delete a served repository: %d %s", r.status, r.body)
		}
		if r := e.call("DELETE", href+"versions/9/", nil); r.status != http.StatusNotFound {
			t.Errorf("delete a version that does not exist: %d", r.status)
		}
		e.deleteAsync(href + "versions/3/")
		if r := e.call("GET", href, nil).json(t); r["_latest_version_href"] != href+"versions/2/" {
			t.Errorf("after deleting the latest: %v", r["_latest_version_href"])
		}
	})
}

// TestOrphanCleanupAPI: what nothing holds goes from the database and
// from storage, reported on the task; what a version holds stays.
func TestOrphanCleanupAPI(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.startRunner()
		id, href := e.createRepo("r")
		kept := e.putImage("kept", []byte("kept layer"))
		e.newVersion(id, kept.ids()...)
		gone := e.putImage("gone", []byte("a layer of 23 bytes....")) // never in a version

		if r := e.call("POST", "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": -1}); r.status != http.StatusBadRequest {
			t.Errorf("negative protection time: %d", r.status)
		}
		// Pulp's default protection keeps what was just stored.
		r := e.call("POST", "/pulp/api/v3/orphans/cleanup/", nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("cleanup: %d %s", r.status, r.body)
		}
		tk := e.waitTask(r.json(t)["task"].(string))
		if tk["state"] != "completed" || reportDone(tk, "clean-up.content") != 0 {
			t.Fatalf("cleanup with the default protection: %v", tk)
		}
		r = e.call("POST", "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0})
		tk = e.waitTask(r.json(t)["task"].(string))
		if tk["state"] != "completed" {
			t.Fatalf("cleanup: %v", tk)
		}
		cfgSize := int64(len(gone.layers[0]))
		if reportDone(tk, "clean-up.content") != 3 || reportDone(tk, "clean-up.blobs") != 2 || reportDone(tk, "clean-up.bytes") != cfgSize+23 {
			t.Errorf("reports %v, want 3 units, 2 blobs, %d bytes", tk["progress_reports"], cfgSize+23)
		}
		for _, b := range gone.blobs {
			if _, err := e.blobs.Stat(t.Context(), b.Digest); err == nil {
				t.Errorf("orphan blob %s still stored", b.Digest)
			}
		}
		for _, b := range kept.blobs {
			if _, err := e.blobs.Stat(t.Context(), b.Digest); err != nil {
				t.Errorf("kept blob %s: %v", b.Digest, err)
			}
		}
		// Deleting the repository makes its content orphans.
		e.deleteAsync(href)
		r = e.call("POST", "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0})
		tk = e.waitTask(r.json(t)["task"].(string))
		if reportDone(tk, "clean-up.blobs") != 2 {
			t.Errorf("after deleting the repository: %v", tk["progress_reports"])
		}
	})
}

func reportDone(tk map[string]any, code string) int64 {
	for _, r := range tk["progress_reports"].([]any) {
		r := r.(map[string]any)
		if r["code"] == code {
			return int64(r["done"].(float64))
		}
	}
	return -1
}
