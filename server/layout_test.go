package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/server"
)

// withLayoutPaths points e at a server that may use OCI layouts under dirs.
func (e *env) withLayoutPaths(t *testing.T, dirs ...string) {
	t.Helper()
	e.srv = newServer(t, e.db, e.blobs, server.Options{Logger: slog.New(slog.DiscardHandler), LayoutPaths: dirs},
		mooring.Options{Registry: distribution.Options{TTL: time.Nanosecond}})
	e.api = httptest.NewServer(e.srv.API())
	t.Cleanup(e.api.Close)
	e.content = httptest.NewServer(e.srv.Content())
	t.Cleanup(e.content.Close)
}

// TestExportImportREST: a repository exported through the REST API to a
// layout, and imported into another repository, as tasks; paths outside
// the allowed directories, relative ones, and every path on a server
// allowed none, are refused naming the field.
func TestExportImportREST(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		_, repo := e.createRepo("foo")
		if r := e.call("POST", repo+"export/", map[string]any{"path": "/tmp/x"}); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "-allowed-paths") {
			t.Errorf("export on a server allowed no paths: %d %s", r.status, r.body)
		}

		allowed := t.TempDir()
		e.withLayoutPaths(t, allowed)
		e.runner(t)
		upstream := regtest.StartInProcess(t)
		if _, err := regtest.PushImage(context.Background(), upstream, "app", "v1", regtest.ImageOpts{Seed: "layout", Layers: 2}); err != nil {
			t.Fatal(err)
		}
		rm := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "app", "upstream_name": "app", "url": "http://" + upstream}).json(t)["_href"].(string)
		if tk := e.waitTask(e.call("POST", rm+"sync/", map[string]any{"repository": repo}).json(t)["task"].(string)); tk["state"] != "completed" {
			t.Fatalf("sync: %v", tk)
		}

		dir := filepath.Join(allowed, "foo")
		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{}, "path"},
			{map[string]any{"path": "relative/dir"}, "path"},
			{map[string]any{"path": "/etc/mooring"}, "path"},
			{map[string]any{"path": allowed + "/../escape"}, "path"},
			{map[string]any{"path": dir, "repository_version": "/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/versions/1/"}, "repository_version"},
			{map[string]any{"path": dir, "repository_version": repo + "versions/7/"}, "repository_version"},
		} {
			if r := e.call("POST", repo+"export/", c.body); r.status != http.StatusBadRequest || r.json(t)[c.field] == nil {
				t.Errorf("export %v: %d %s, want 400 about %s", c.body, r.status, r.body, c.field)
			}
		}
		r := e.call("POST", repo+"export/", map[string]any{"path": dir, "repository_version": repo + "versions/1/"})
		if r.status != http.StatusAccepted {
			t.Fatalf("export: %d %s", r.status, r.body)
		}
		tk := e.waitTask(r.json(t)["task"].(string))
		if tk["state"] != "completed" || !reflect.DeepEqual(tk["created_resources"], []any{dir}) || tk["name"] != "export" {
			t.Fatalf("export task: %v", tk)
		}
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
			t.Fatalf("no layout written: %v", err)
		}
		// Exporting to the same place again fails as a task, saying why.
		tk = e.waitTask(e.call("POST", repo+"export/", map[string]any{"path": dir}).json(t)["task"].(string))
		if tk["state"] != "failed" || !strings.Contains(tk["error"].(map[string]any)["description"].(string), "already exists") {
			t.Errorf("export onto a layout: %v", tk)
		}

		_, into := e.createRepo("bar")
		if r := e.call("POST", into+"import/", map[string]any{"path": "/nowhere"}); r.status != http.StatusBadRequest {
			t.Errorf("import from outside: %d %s", r.status, r.body)
		}
		if r := e.call("POST", "/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/import/", map[string]any{"path": dir}); r.status != http.StatusNotFound {
			t.Errorf("import into a missing repository: %d %s", r.status, r.body)
		}
		r = e.call("POST", into+"import/", map[string]any{"path": dir})
		if r.status != http.StatusAccepted {
			t.Fatalf("import: %d %s", r.status, r.body)
		}
		tk = e.waitTask(r.json(t)["task"].(string))
		if tk["state"] != "completed" || !reflect.DeepEqual(tk["created_resources"], []any{into + "versions/1/"}) {
			t.Fatalf("import task: %v", tk)
		}
		for _, href := range []string{repo, into} {
			got := e.call("GET", "/pulp/api/v3/content/docker/manifest-tags/?repository_version="+href+"versions/1/", nil).json(t)
			if got["count"] != 1.0 {
				t.Errorf("%s version 1 has %v tags", href, got["count"])
			}
		}
		// What was imported is served.
		if r := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "bar", "base_path": "bar", "repository": into}); r.status != http.StatusCreated {
			t.Fatalf("distribution: %d %s", r.status, r.body)
		}
		if r := e.get("GET", "/v2/bar/manifests/v1"); r.status != http.StatusOK {
			t.Errorf("pull of the imported v1: %d", r.status)
		}
	})
}
