package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
)

func TestAuthentication(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		for _, path := range []string{"/pulp/api/v3/repositories/", "/pulp/api/v3/tasks/", "/pulp/api/v3/docs/api.json", "/pulp/api/v3/nowhere/"} {
			r := e.call("GET", path, nil, noAuth)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("GET %s without credentials: %d, WWW-Authenticate %q", path, r.status, r.header.Get("WWW-Authenticate"))
			}
			if got := r.json(t)["detail"]; got != "Authentication credentials were not provided." {
				t.Errorf("detail %q", got)
			}
		}
		for _, cred := range [][2]string{{"admin", "wrong"}, {"nobody", password}, {"", ""}} {
			r := e.call("GET", "/pulp/api/v3/repositories/", nil, func(r *http.Request) { r.SetBasicAuth(cred[0], cred[1]) })
			if r.status != http.StatusUnauthorized || r.json(t)["detail"] != "Invalid username/password." {
				t.Errorf("credentials %q: %d %s", cred, r.status, r.body)
			}
		}
		if r := e.call("GET", "/pulp/api/v3/repositories/", nil); r.status != http.StatusOK {
			t.Errorf("with credentials: %d %s", r.status, r.body)
		}
	})
}

func TestRepositories(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		r := e.call("POST", "/pulp/api/v3/repositories/", map[string]any{"name": "foo", "description": "a repo"})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		repo := r.json(t)
		href := repo["_href"].(string)
		if repo["_versions_href"] != href+"versions/" || repo["_latest_version_href"] != href+"versions/0/" || repo["description"] != "a repo" {
			t.Errorf("created %v", repo)
		}
		for _, c := range []struct {
			body any
			want map[string]any
		}{
			{map[string]any{"name": "foo"}, map[string]any{"name": []any{`A repository named "foo" already exists`}}},
			{map[string]any{"name": "bar", "colour": "red"}, map[string]any{"colour": []any{"Unexpected field"}}},
			{map[string]any{}, map[string]any{"name": []any{"This field is required."}}},
			{map[string]any{"name": true}, map[string]any{"name": []any{"Not a valid string."}}},
			{map[string]any{"name": "  "}, map[string]any{"name": []any{"This field may not be blank."}}},
			{map[string]any{"name": nil}, map[string]any{"name": []any{"This field may not be null."}}},
			{`[1,2]`, map[string]any{"non_field_errors": []any{"Invalid data. Expected a JSON object."}}},
			{`{"name": "x"`, map[string]any{"non_field_errors": []any{"Invalid data. Expected a JSON object."}}},
		} {
			r := e.call("POST", "/pulp/api/v3/repositories/", c.body)
			if r.status != http.StatusBadRequest || !reflect.DeepEqual(r.json(t), c.want) {
				t.Errorf("POST %v: %d %s, want 400 %v", c.body, r.status, r.body, c.want)
			}
		}
		if r := e.call("POST", "/pulp/api/v3/repositories/", strings.Repeat(" ", 2<<20)); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB body: %d %s", r.status, r.body)
		}
		for i := range 3 {
			e.createRepo(fmt.Sprintf("r%d", i))
		}
		page := e.call("GET", "/pulp/api/v3/repositories/?limit=2&offset=1", nil).json(t)
		if page["count"] != 4.0 || len(page["results"].([]any)) != 2 || page["next"] == nil || page["previous"] == nil {
			t.Errorf("page %v", page)
		}
		if next := page["next"].(string); !strings.Contains(next, "limit=2") || !strings.Contains(next, "offset=3") {
			t.Errorf("next = %s", next)
		}
		byName := e.call("GET", "/pulp/api/v3/repositories/?name=foo", nil).json(t)
		if byName["count"] != 1.0 {
			t.Errorf("filter by name: %v", byName)
		}
		for _, q := range []string{"?limit=x", "?offset=-1", "?colour=red"} {
			if r := e.call("GET", "/pulp/api/v3/repositories/"+q, nil); r.status != http.StatusBadRequest {
				t.Errorf("GET %s: %d %s", q, r.status, r.body)
			}
		}

		r = e.call("PATCH", href, map[string]any{"description": nil})
		if r.status != http.StatusOK || r.json(t)["description"] != nil || r.json(t)["name"] != "foo" {
			t.Errorf("PATCH: %d %s", r.status, r.body)
		}
		r = e.call("PUT", href, map[string]any{"description": "x"})
		if r.status != http.StatusBadRequest {
			t.Errorf("PUT without name: %d %s", r.status, r.body)
		}
		r = e.call("PATCH", href, map[string]any{"name": "r0"})
		if r.status != http.StatusBadRequest || r.json(t)["name"] == nil {
			t.Errorf("rename to a taken name: %d %s", r.status, r.body)
		}
		e.deleteAsync(href)
		r = e.call("GET", href, nil)
		if r.status != http.StatusNotFound || r.json(t)["detail"] != "Not found." {
			t.Errorf("GET deleted: %d %s", r.status, r.body)
		}
		for _, path := range []string{"/pulp/api/v3/repositories/not-a-uuid/", "/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/versions/1/"} {
			if r := e.call("GET", path, nil); r.status != http.StatusNotFound {
				t.Errorf("GET %s: %d", path, r.status)
			}
		}
		req, _ := http.NewRequest("GET", e.api.URL+"/pulp/api/v3/repositories?limit=1", nil)
		req.SetBasicAuth(mooring.AdminUser, password)
		resp, err := (&http.Transport{}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/pulp/api/v3/repositories/?limit=1" {
			t.Errorf("GET without the trailing slash: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if r := e.call("POST", href+"versions/", nil); r.status != http.StatusMethodNotAllowed {
			t.Errorf("POST versions/: %d %s", r.status, r.body)
		}
	})
}

func TestVersionsAndContent(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		id, href := e.createRepo("foo")
		a := e.putImage("a", []byte("layer a"))
		b := e.putImage("b", []byte("layer b"))
		list, _ := e.putList([]image{a, b}, []string{"amd64", "arm64"})
		v1 := e.newVersion(id, append(a.ids(), e.tag("v1", a.manifest))...)
		_ = v1
		add := append(b.ids(), list.ID, e.tag("latest", list))
		v, err := e.repos.NewVersion(context.Background(), id, repositoryChange(add, []int64{a.blobs[1].ID}))
		if err != nil {
			t.Fatal(err)
		}
		v2 := href + fmt.Sprintf("versions/%d/", v.Number)

		got := e.call("GET", v2, nil).json(t)
		sum := got["content_summary"].(map[string]any)
		check := func(part string, typ content.Type, n int, param string) {
			t.Helper()
			entry, _ := sum[part].(map[string]any)[string(typ)].(map[string]any)
			if n == 0 {
				if entry != nil {
					t.Errorf("%s[%s] = %v, want absent", part, typ, entry)
				}
				return
			}
			if entry == nil || entry["count"] != float64(n) {
				t.Errorf("%s[%s] = %v, want count %d", part, typ, entry, n)
				return
			}
			// The href lists exactly what the count counts.
			listed := e.call("GET", entry["href"].(string), nil).json(t)
			if listed["count"] != float64(n) || !strings.Contains(entry["href"].(string), "?"+param+"="+v2) {
				t.Errorf("%s lists %v, want %d", entry["href"], listed["count"], n)
			}
		}
		check("added", content.TypeManifest, 1, "repository_version_added")
		check("added", content.TypeManifestList, 1, "repository_version_added")
		check("added", content.TypeBlob, 2, "repository_version_added")
		check("added", content.TypeManifestListTag, 1, "repository_version_added")
		check("removed", content.TypeBlob, 1, "repository_version_removed")
		check("removed", content.TypeManifest, 0, "")
		check("present", content.TypeManifest, 2, "repository_version")
		check("present", content.TypeBlob, 3, "repository_version")
		check("present", content.TypeManifestTag, 1, "repository_version")
		if got["number"] != 2.0 || got["base_version"] != nil {
			t.Errorf("version: %v", got)
		}

		versions := e.call("GET", href+"versions/", nil).json(t)
		if versions["count"] != 3.0 || versions["results"].([]any)[0].(map[string]any)["number"] != 2.0 {
			t.Errorf("versions: %v", versions)
		}

		// Filters.
		base := "/pulp/api/v3/content/docker/"
		for _, c := range []struct {
			query string
			count int
		}{
			{"manifests/?digest=" + a.manifest.Digest.String(), 1},
			{"manifests/?repository_version=" + href + "versions/1/", 1},
			{"manifest-tags/?name=v1", 1},
			{"manifest-list-tags/?name=latest&repository_version=" + v2, 1},
			{"manifest-list-tags/?name=v1", 0},
			{"blobs/?media_type=" + url.QueryEscape(content.MediaTypeOCIConfig), 2},
			{"blobs/?repository_version=" + v2 + "&repository_version_added=" + v2, 2},
			{"manifests/?repository_version=http://example.com" + v2, 2},
		} {
			r := e.call("GET", base+c.query, nil)
			if r.status != http.StatusOK || r.json(t)["count"] != float64(c.count) {
				t.Errorf("GET %s: %d %s, want count %d", c.query, r.status, r.body, c.count)
			}
		}
		for _, q := range []string{
			"manifests/?repository_version=/pulp/api/v3/repositories/x/versions/1/",
			"manifests/?repository_version=" + href + "versions/9/",
			"manifests/?digest=sha256:nothex",
			"manifests/?limit=-3",
			"manifests/?sort=digest",
		} {
			if r := e.call("GET", base+q, nil); r.status != http.StatusBadRequest {
				t.Errorf("GET %s: %d %s, want 400", q, r.status, r.body)
			}
		}

		// Details, under their own kind only.
		units := e.call("GET", base+"manifests/?digest="+a.manifest.Digest.String(), nil).json(t)["results"].([]any)
		mhref := units[0].(map[string]any)["_href"].(string)
		m := e.call("GET", mhref, nil).json(t)
		if m["digest"] != a.manifest.Digest.String() || m["media_type"] != content.MediaTypeOCIManifest || m["size"] != float64(len(a.raw)) {
			t.Errorf("manifest detail %v", m)
		}
		if blobs, _ := m["blobs"].([]any); len(blobs) != 1 || m["config_blob"] == nil {
			t.Errorf("manifest links blobs %v and config %v", m["blobs"], m["config_blob"])
		} else if b := e.call("GET", blobs[0].(string), nil).json(t); b["digest"] != a.blobs[1].Digest.String() {
			t.Errorf("manifest's layer link leads to %v", b)
		}
		lists := e.call("GET", base+"manifest-lists/", nil).json(t)["results"].([]any)
		if ms, _ := lists[0].(map[string]any)["manifests"].([]any); len(ms) != 2 || ms[0] != mhref {
			t.Errorf("list links %v, want 2 starting with %s", ms, mhref)
		}
		tags := e.call("GET", base+"manifest-tags/?name=v1", nil).json(t)["results"].([]any)
		if len(tags) != 1 || tags[0].(map[string]any)["tagged_manifest"] != mhref {
			t.Errorf("tag v1 = %v, want tagged_manifest %s", tags, mhref)
		}
		if r := e.call("GET", strings.Replace(mhref, "/manifests/", "/blobs/", 1), nil); r.status != http.StatusNotFound {
			t.Errorf("manifest under blobs/: %d", r.status)
		}
		if r := e.call("POST", base+"manifests/", map[string]any{}); r.status != http.StatusMethodNotAllowed {
			t.Errorf("POST content: %d", r.status)
		}

		// Deleting: a middle version folds into the next; the only one stays.
		e.deleteAsync(href + "versions/1/")
		if r := e.call("GET", href+"versions/1/", nil); r.status != http.StatusNotFound {
			t.Errorf("deleted version: %d", r.status)
		}
	})
}

func TestDistributions(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		id, href := e.createRepo("foo")
		a := e.putImage("a", []byte("layer a"))
		e.newVersion(id, a.ids()...)
		const path = "/pulp/api/v3/docker-distributions/"
		r := e.call("POST", path, map[string]any{"name": "baz", "base_path": "foo", "repository": href})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		d := r.json(t)
		if d["registry_path"] != "localhost:24816/foo" || d["repository"] != href || d["repository_version"] != nil {
			t.Errorf("created %v", d)
		}
		dhref := d["_href"].(string)

		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "baz", "base_path": "other", "repository": href}, "name"},
			{map[string]any{"name": "x", "base_path": "foo", "repository": href}, "base_path"},
			{map[string]any{"name": "x", "base_path": "foo/bar", "repository": href}, "base_path"},
			{map[string]any{"name": "x", "base_path": "Foo", "repository": href}, "base_path"},
			{map[string]any{"name": "x", "base_path": "a//b", "repository": href}, "base_path"},
			{map[string]any{"name": "x", "base_path": "x", "repository": href, "repository_version": href + "versions/1/"}, "repository"},
			{map[string]any{"name": "x", "base_path": "x"}, "repository"},
			{map[string]any{"name": "x", "base_path": "x", "repository": "/pulp/api/v3/tasks/"}, "repository"},
			{map[string]any{"name": "x", "base_path": "x", "repository": "/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/"}, "repository"},
			{map[string]any{"name": "x", "base_path": "x", "repository_version": href + "versions/7/"}, "repository_version"},
			{map[string]any{"name": "x", "base_path": "x", "repository": 42}, "repository"},
		} {
			r := e.call("POST", path, c.body)
			if r.status != http.StatusBadRequest || r.json(t)[c.field] == nil {
				t.Errorf("POST %v: %d %s, want 400 about %s", c.body, r.status, r.body, c.field)
			}
		}
		// A base path that is a prefix of another, the other way round.
		if r := e.call("POST", path, map[string]any{"name": "deep", "base_path": "a/b", "repository": href}); r.status != http.StatusCreated {
			t.Fatalf("a/b: %d %s", r.status, r.body)
		}
		if r := e.call("POST", path, map[string]any{"name": "shallow", "base_path": "a", "repository": href}); r.status != http.StatusBadRequest {
			t.Errorf("a under a/b: %d %s", r.status, r.body)
		}
		for _, c := range []struct {
			base   string
			status int
		}{
			{"a/bc", http.StatusCreated}, {"a_c", http.StatusCreated}, {"axc/d", http.StatusCreated},
			{"a_c/d", http.StatusBadRequest}, {"a/b/c/d", http.StatusBadRequest}, {"a%", http.StatusBadRequest},
		} {
			r := e.call("POST", path, map[string]any{"name": "n-" + c.base, "base_path": c.base, "repository": href})
			if r.status != c.status {
				t.Errorf("base path %q beside a/b and a_c: %d %s, want %d", c.base, r.status, r.body, c.status)
			}
		}

		// Pin version 1; switching needs repository cleared, as in Pulp.
		v1 := href + "versions/1/"
		if r := e.call("PATCH", dhref, map[string]any{"repository_version": v1}); r.status != http.StatusBadRequest {
			t.Errorf("both set by PATCH: %d %s", r.status, r.body)
		}
		r = e.call("PATCH", dhref, map[string]any{"repository": nil, "repository_version": v1})
		if r.status != http.StatusOK || r.json(t)["repository_version"] != v1 || r.json(t)["repository"] != nil {
			t.Fatalf("pin: %d %s", r.status, r.body)
		}
		// A pinned version cannot be deleted, nor its repository.
		b := e.putImage("b", []byte("layer b"))
		e.newVersion(id, b.ids()...)
		r = e.call("DELETE", v1, nil)
		if r.status != http.StatusConflict || !strings.Contains(r.json(t)["detail"].(string), `"baz"`) {
			t.Errorf("delete pinned version: %d %s", r.status, r.body)
		}
		if r := e.call("DELETE", href, nil); r.status != http.StatusConflict {
			t.Errorf("delete served repository: %d %s", r.status, r.body)
		}
		list := e.call("GET", path+"?base_path=foo", nil).json(t)
		if list["count"] != 1.0 {
			t.Errorf("filter base_path: %v", list)
		}
		for _, p := range []string{dhref, path + "00000000-0000-0000-0000-000000000000/"} {
			want := http.StatusNoContent
			if p != dhref {
				want = http.StatusNotFound
			}
			if r := e.call("DELETE", p, nil); r.status != want {
				t.Errorf("DELETE %s: %d, want %d", p, r.status, want)
			}
		}
		e.deleteAsync(v1)
	})
}

func TestRemotesSyncAndTasks(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.runner(t)
		upstream := regtest.StartInProcess(t)
		ctx := context.Background()
		if _, err := regtest.PushImage(ctx, upstream, "busybox", "v1", regtest.ImageOpts{Seed: "x", Layers: 2}); err != nil {
			t.Fatal(err)
		}
		const path = "/pulp/api/v3/remotes/docker/docker/"
		r := e.call("POST", path, map[string]any{"name": "library/busybox", "upstream_name": "busybox", "url": "http://" + upstream,
			"username": "u", "password": "hunter2", "whitelist_tags": "v1, v2", "download_concurrency": "4"})
		if r.status != http.StatusCreated {
			t.Fatalf("create remote: %d %s", r.status, r.body)
		}
		rm := r.json(t)
		if strings.Contains(string(r.body), "hunter2") {
			t.Errorf("secrets in response: %s", r.body)
		}
		if !reflect.DeepEqual(rm["whitelist_tags"], []any{"v1", "v2"}) || rm["download_concurrency"] != 4.0 || rm["ssl_validation"] != true {
			t.Errorf("remote %v", rm)
		}
		rhref := rm["_href"].(string)
		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "library/busybox", "upstream_name": "b", "url": "http://x"}, "name"},
			{map[string]any{"name": "n", "upstream_name": "b", "url": "ftp://x"}, "url"},
			{map[string]any{"name": "n", "upstream_name": "b"}, "url"},
			{map[string]any{"name": "n", "upstream_name": "b", "url": "http://x", "download_concurrency": "many"}, "download_concurrency"},
			{map[string]any{"name": "n", "upstream_name": "b", "url": "http://x", "download_concurrency": 0}, "download_concurrency"},
			{map[string]any{"name": "n", "upstream_name": "b", "url": "http://x", "ssl_validation": "perhaps"}, "ssl_validation"},
			{map[string]any{"name": "n", "upstream_name": "b", "url": "http://x", "policy": "lazy"}, "policy"},
		} {
			r := e.call("POST", path, c.body)
			if r.status != http.StatusBadRequest || r.json(t)[c.field] == nil {
				t.Errorf("POST %v: %d %s, want 400 about %s", c.body, r.status, r.body, c.field)
			}
		}
		r = e.call("PATCH", rhref, map[string]any{"whitelist_tags": []string{"v1"}})
		if r.status != http.StatusOK || r.json(t)["url"] != "http://"+upstream {
			t.Errorf("PATCH remote: %d %s", r.status, r.body)
		}

		_, repo := e.createRepo("foo")
		for _, body := range []map[string]any{{}, {"repository": "/nowhere/"}, {"repository": repo, "mirror": "maybe"}, {"repository": repo, "extra": 1},
			{"repository": "/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/"}} {
			if r := e.call("POST", rhref+"sync/", body); r.status != http.StatusBadRequest {
				t.Errorf("sync %v: %d %s", body, r.status, r.body)
			}
		}
		r = e.call("POST", rhref+"sync/", map[string]any{"repository": repo})
		if r.status != http.StatusAccepted {
			t.Fatalf("sync: %d %s", r.status, r.body)
		}
		thref := r.json(t)["task"].(string)
		tk := e.waitTask(thref)
		if tk["state"] != "completed" || !reflect.DeepEqual(tk["created_resources"], []any{repo + "versions/1/"}) {
			t.Fatalf("task %v", tk)
		}
		if len(tk["progress_reports"].([]any)) == 0 {
			t.Errorf("no progress reports: %v", tk)
		}
		summary := e.call("GET", repo+"versions/1/", nil).json(t)["content_summary"].(map[string]any)["present"].(map[string]any)
		if summary["docker.manifest-blob"].(map[string]any)["count"] != 3.0 {
			t.Errorf("synced %v", summary)
		}

		// Tasks: list, filter, cancel.
		if r := e.call("GET", "/pulp/api/v3/tasks/?state=completed", nil).json(t); r["count"] != 1.0 {
			t.Errorf("completed tasks: %v", r)
		}
		if r := e.call("GET", "/pulp/api/v3/tasks/?state=waiting", nil).json(t); r["count"] != 0.0 {
			t.Errorf("waiting tasks: %v", r)
		}
		if r := e.call("GET", "/pulp/api/v3/tasks/?state=sleepy", nil); r.status != http.StatusBadRequest {
			t.Errorf("bad state filter: %d", r.status)
		}
		if r := e.call("PATCH", thref, map[string]any{"state": "canceled"}); r.status != http.StatusConflict {
			t.Errorf("cancel a finished task: %d %s", r.status, r.body)
		}
		for _, body := range []any{map[string]any{"state": "running"}, map[string]any{}, map[string]any{"state": "canceled", "x": 1}} {
			if r := e.call("PATCH", thref, body); r.status != http.StatusBadRequest {
				t.Errorf("PATCH task %v: %d %s", body, r.status, r.body)
			}
		}
		if r := e.call("GET", "/pulp/api/v3/tasks/00000000-0000-0000-0000-000000000000/", nil); r.status != http.StatusNotFound {
			t.Errorf("unknown task: %d", r.status)
		}
		// A failing sync fails its task with a reason.
		e.call("PATCH", rhref, map[string]any{"upstream_name": "not/there"})
		thref = e.call("POST", rhref+"sync/", map[string]any{"repository": repo, "mirror": true}).json(t)["task"].(string)
		tk = e.waitTask(thref)
		if tk["state"] != "failed" || tk["error"] == nil {
			t.Errorf("sync from nowhere: %v", tk)
		}
		if r := e.call("DELETE", rhref, nil); r.status != http.StatusNoContent {
			t.Errorf("delete remote: %d", r.status)
		}
	})
}

func TestOpenAPIDocument(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		r := e.call("GET", "/pulp/api/v3/docs/api.json", nil)
		if r.status != http.StatusOK || r.json(t)["openapi"] != "3.0.3" {
			t.Errorf("docs: %d", r.status)
		}
	})
}

func TestCancelWaitingTask(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db) // no workers: the task stays waiting
		_, repo := e.createRepo("foo")
		rm := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "r", "url": "http://127.0.0.1:1", "upstream_name": "x"}).json(t)
		thref := e.call("POST", rm["_href"].(string)+"sync/", map[string]any{"repository": repo, "mirror": "true"}).json(t)["task"].(string)
		if tk := e.call("GET", "/pulp/api/v3/tasks/?state=waiting", nil).json(t); tk["count"] != 1.0 {
			t.Fatalf("waiting tasks: %v", tk)
		}
		r := e.call("PATCH", thref, map[string]any{"state": "canceled"})
		if r.status != http.StatusOK || r.json(t)["state"] != "canceled" || r.json(t)["finished_at"] == nil {
			t.Errorf("cancel: %d %s", r.status, r.body)
		}
		if tk := e.call("GET", thref, nil).json(t); tk["state"] != "canceled" {
			t.Errorf("after cancel: %v", tk)
		}
	})
}
