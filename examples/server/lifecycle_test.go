package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// api is a REST client for tests that may run in goroutines: it returns
// errors instead of failing the test.
type api struct {
	base     string
	password string
}

// call makes a request as admin and decodes the JSON answer, if any.
func (c *api) call(ctx context.Context, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	if !strings.HasPrefix(path, "http") {
		path = c.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("admin", c.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	if resp.StatusCode >= 500 {
		return resp.StatusCode, out, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out, nil
}

// must is call that wants a status below 300; another is a *statusError.
func (c *api) must(ctx context.Context, method, path string, body any) (map[string]any, error) {
	status, out, err := c.call(ctx, method, path, body)
	if err == nil && status >= 300 {
		err = &statusError{status, fmt.Sprintf("%s %s: %d %v", method, path, status, out)}
	}
	return out, err
}

// statusError is an answer with an unexpected status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// wait polls a task until it has finished and returns it.
func (c *api) wait(ctx context.Context, href string) (map[string]any, error) {
	for {
		tk, err := c.must(ctx, "GET", href, nil)
		if err != nil {
			return nil, err
		}
		switch tk["state"] {
		case "completed", "failed", "canceled":
			return tk, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("task %s still %v: %w", href, tk["state"], ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run posts to path and waits for the task it answers with; it returns
// the task.
func (c *api) run(ctx context.Context, path string, body any) (map[string]any, error) {
	out, err := c.must(ctx, "POST", path, body)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, out["task"].(string))
}

// taskError returns a failed task's error, "" for a completed one.
func taskError(tk map[string]any) string {
	if tk["state"] == "completed" {
		return ""
	}
	if e, ok := tk["error"].(map[string]any); ok {
		return fmt.Sprint(tk["state"], ": ", e["description"])
	}
	return fmt.Sprint(tk["state"])
}

// results lists every result of a paged list.
func (c *api) results(ctx context.Context, path string) ([]map[string]any, error) {
	var out []map[string]any
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := path + sep + "limit=1000"
	for next != "" {
		page, err := c.must(ctx, "GET", next, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range page["results"].([]any) {
			out = append(out, r.(map[string]any))
		}
		next, _ = page["next"].(string)
	}
	return out, nil
}

// unitHref returns the href of the unit of the given kind ("manifest-tags",
// "manifests", …) with name or digest in version vhref, "" when none.
func (c *api) unitHref(ctx context.Context, vhref, kind, filter string) (string, error) {
	units, err := c.results(ctx, "/pulp/api/v3/content/docker/"+kind+"/?repository_version="+url.QueryEscape(vhref)+"&"+filter)
	if err != nil || len(units) == 0 {
		return "", err
	}
	return units[0]["_href"].(string), nil
}

// present returns the present counts of a version's content summary.
func (c *api) present(ctx context.Context, vhref string) (map[string]int, error) {
	v, err := c.must(ctx, "GET", vhref, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for typ, e := range v["content_summary"].(map[string]any)["present"].(map[string]any) {
		out[typ] = int(e.(map[string]any)["count"].(float64))
	}
	return out, nil
}

// TestLifecycleClients runs every repository action, retention, deletes
// and orphan cleanup through the built server against a repository synced
// from a Debian docker-registry and one pushed with skopeo, and checks
// each result as users would, with crane and skopeo through the registry:
// tags appear and vanish, copied images pull with upstream's digests,
// content summaries count what they should.
func TestLifecycleClients(t *testing.T) {
	if testing.Short() {
		t.Skip("client tests skipped in -short mode")
	}
	skopeo := requireTool(t, "skopeo")
	crane := requireTool(t, "crane")
	if _, err := exec.LookPath(regtest.DistributionBinary); err != nil && os.Getenv("MOORING_TEST_REQUIRE") != "" {
		t.Fatalf("MOORING_TEST_REQUIRE is set but %s is not installed", regtest.DistributionBinary)
	}
	upstream := regtest.StartDistribution(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	push := func(tag string, opts regtest.ImageOpts) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, upstream, "lc/app", tag, opts)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	amd := push("v1", regtest.ImageOpts{Seed: "lc-amd", Layers: 2})
	arm := push("arm", regtest.ImageOpts{Seed: "lc-arm", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
	other := push("v2", regtest.ImageOpts{Seed: "lc-other", LayerSize: 5000})
	list, err := regtest.PushIndex(ctx, upstream, "lc/app", "multi", regtest.Docker, amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	// Pushed to Mooring only, never synced.
	only, err := regtest.PushImage(ctx, upstream, "lc/only", "only", regtest.ImageOpts{Seed: "lc-only", LayerSize: 7000})
	if err != nil {
		t.Fatal(err)
	}

	bin := buildServer(t)
	p, password := startConformanceServer(t, bin)
	c := &api{base: "http://" + p.api, password: password}
	ok := func(out map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// act runs a repository action and returns the version it made.
	act := func(repo, action string, body any) string {
		t.Helper()
		tk := ok(c.run(ctx, repo+action+"/", body))
		if e := taskError(tk); e != "" {
			t.Fatalf("%s %v: %s", action, body, e)
		}
		if created := tk["created_resources"].([]any); len(created) > 0 {
			return created[0].(string)
		}
		return ""
	}
	latest := func(repo string) string { return ok(c.must(ctx, "GET", repo, nil))["_latest_version_href"].(string) }
	unit := func(vhref, kind, filter string) string {
		t.Helper()
		h, err := c.unitHref(ctx, vhref, kind, filter)
		if err != nil || h == "" {
			t.Fatalf("no %s %s in %s (%v)", kind, filter, vhref, err)
		}
		return h
	}
	cr := func(args ...string) string {
		t.Helper()
		return runIn(t, ctx, "", nil, crane, append(args, "--insecure")...)
	}
	crFails := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, crane, append(args, "--insecure")...)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("crane %s succeeded, want it to fail:\n%s", strings.Join(args, " "), out)
		}
	}
	tags := func(repo string) []string {
		t.Helper()
		out := cr("ls", p.content+"/"+repo)
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}
	// pullAll copies every platform of ref out with skopeo, which checks
	// every digest, and returns the digest of the top manifest.
	pullAll := func(ref string) digest.Digest {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		runIn(t, ctx, "", nil, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "docker://"+p.content+"/"+ref, "dir:"+out)
		raw, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		return digest.FromBytes(raw)
	}
	wantPresent := func(vhref string, want map[string]int) {
		t.Helper()
		got := ok(func() (map[string]any, error) {
			m, err := c.present(ctx, vhref)
			out := map[string]any{}
			for k, v := range m {
				out[k] = v
			}
			return out, err
		}())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s holds %v, want %v", vhref, got, want)
		}
	}

	// A repository synced from the upstream, and one pushed with skopeo.
	synced := ok(c.must(ctx, "POST", "/pulp/api/v3/repositories/", map[string]any{"name": "synced"}))["_href"].(string)
	remote := ok(c.must(ctx, "POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "app", "url": "http://" + upstream, "upstream_name": "lc/app"}))
	if tk := ok(c.run(ctx, remote["_href"].(string)+"sync/", map[string]any{"repository": synced})); taskError(tk) != "" {
		t.Fatalf("sync: %s", taskError(tk))
	}
	ok(c.must(ctx, "POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "synced", "base_path": "lc/synced", "repository": synced}))
	creds := "admin:" + password
	for _, ref := range []string{"lc/app:multi", "lc/app:v2", "lc/only:only"} {
		runIn(t, ctx, "", nil, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", creds,
			"docker://"+upstream+"/"+ref, "docker://"+p.content+"/lc/pushed:"+strings.Split(ref, ":")[1])
	}
	pushedRepos := ok(c.must(ctx, "GET", "/pulp/api/v3/repositories/?name=lc/pushed", nil))["results"].([]any)
	if len(pushedRepos) != 1 {
		t.Fatalf("the push made %d repositories named lc/pushed", len(pushedRepos))
	}
	pushed := pushedRepos[0].(map[string]any)["_href"].(string)

	// Promotion into prod, served at lc/prod.
	prod := ok(c.must(ctx, "POST", "/pulp/api/v3/repositories/", map[string]any{"name": "prod"}))["_href"].(string)
	ok(c.must(ctx, "POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "prod", "base_path": "lc/prod", "repository": prod}))

	t.Run("copy_tags", func(t *testing.T) {
		v := act(prod, "copy_tags", map[string]any{"source_repository": synced, "names": []string{"v1", "multi"}})
		if got := tags("lc/prod"); !slices.Equal(got, []string{"multi", "v1"}) {
			t.Errorf("crane ls lc/prod: %v", got)
		}
		if got := cr("digest", p.content+"/lc/prod:v1"); got != amd.Digest.String() {
			t.Errorf("lc/prod:v1 is %s, upstream's v1 %s", got, amd.Digest)
		}
		if got := pullAll("lc/prod:multi"); got != list.Digest {
			t.Errorf("lc/prod:multi pulled as %s, upstream's %s", got, list.Digest)
		}
		wantPresent(v, map[string]int{"docker.manifest": 2, "docker.manifest-blob": 5, "docker.manifest-list": 1, "docker.manifest-list-tag": 1, "docker.manifest-tag": 1})
	})
	t.Run("tag and untag", func(t *testing.T) {
		act(prod, "tag", map[string]any{"tag": "stable", "digest": amd.Digest})
		if got := cr("digest", p.content+"/lc/prod:stable"); got != amd.Digest.String() {
			t.Errorf("lc/prod:stable is %s, want %s", got, amd.Digest)
		}
		act(prod, "untag", map[string]any{"tag": "stable"})
		if got := tags("lc/prod"); slices.Contains(got, "stable") {
			t.Errorf("crane ls after untag: %v", got)
		}
		crFails("digest", p.content+"/lc/prod:stable")
		// The image stays: v1 names it.
		cr("manifest", p.content+"/lc/prod@"+amd.Digest.String())
	})
	t.Run("copy_manifests", func(t *testing.T) {
		act(prod, "copy_manifests", map[string]any{"source_repository": pushed, "digests": []string{other.Digest.String()}})
		if got := cr("digest", p.content+"/lc/prod@"+other.Digest.String()); got != other.Digest.String() {
			t.Errorf("copied manifest: %s", got)
		}
		if got := tags("lc/prod"); !slices.Equal(got, []string{"multi", "v1"}) {
			t.Errorf("copy_manifests brought tags: %v", got)
		}
		layer := regtest.LayerDescriptor("lc-other", 0, 5000, ocispec.MediaTypeImageLayerGzip).Digest
		if got := digest.FromString(cr("blob", p.content+"/lc/prod@"+layer.String())); got != layer {
			t.Errorf("the copied manifest's layer pulled as %s, want %s", got, layer)
		}
	})
	t.Run("remove", func(t *testing.T) {
		v := act(prod, "remove", map[string]any{"content_units": []string{unit(latest(prod), "manifest-list-tags", "name=multi")}})
		crFails("manifest", p.content+"/lc/prod@"+list.Digest.String())
		crFails("manifest", p.content+"/lc/prod@"+arm.Digest.String())
		armLayer := regtest.LayerDescriptor("lc-arm", 0, 1<<10, "").Digest
		crFails("blob", p.content+"/lc/prod@"+armLayer.String())
		if got := cr("digest", p.content+"/lc/prod:v1"); got != amd.Digest.String() {
			t.Errorf("v1 after removing multi: %s", got)
		}
		wantPresent(v, map[string]int{"docker.manifest": 2, "docker.manifest-blob": 5, "docker.manifest-tag": 1})
	})
	t.Run("add", func(t *testing.T) {
		act(prod, "add", map[string]any{"content_units": []string{unit(latest(pushed), "manifest-tags", "name=v2")}})
		if got := tags("lc/prod"); !slices.Equal(got, []string{"v1", "v2"}) {
			t.Errorf("crane ls after add: %v", got)
		}
		if got := cr("digest", p.content+"/lc/prod:v2"); got != other.Digest.String() {
			t.Errorf("lc/prod:v2 is %s, want %s", got, other.Digest)
		}
	})
	t.Run("modify", func(t *testing.T) {
		v := act(prod, "modify", map[string]any{"base_version": prod + "versions/0/",
			"add_content_units": []string{unit(latest(synced), "manifest-list-tags", "name=multi")}})
		if got := tags("lc/prod"); !slices.Equal(got, []string{"multi"}) {
			t.Errorf("crane ls after modify: %v", got)
		}
		if got := pullAll("lc/prod:multi"); got != list.Digest {
			t.Errorf("lc/prod:multi after modify: %s", got)
		}
		wantPresent(v, map[string]int{"docker.manifest": 2, "docker.manifest-blob": 5, "docker.manifest-list": 1, "docker.manifest-list-tag": 1})
	})
	t.Run("pushed repository", func(t *testing.T) {
		act(pushed, "untag", map[string]any{"tag": "v2"})
		act(pushed, "tag", map[string]any{"tag": "latest", "digest": list.Digest})
		if got := tags("lc/pushed"); !slices.Equal(got, []string{"latest", "multi", "only"}) {
			t.Errorf("crane ls lc/pushed: %v", got)
		}
		if got := pullAll("lc/pushed:latest"); got != list.Digest {
			t.Errorf("lc/pushed:latest: %s", got)
		}
		v := act(pushed, "remove", map[string]any{"content_units": []string{"*"}})
		if got := tags("lc/pushed"); len(got) != 0 {
			t.Errorf(`crane ls lc/pushed after remove ["*"]: %v`, got)
		}
		wantPresent(v, map[string]int{})
		// Put back what only this repository holds, from version 1.
		act(pushed, "copy_tags", map[string]any{"source_repository_version": pushed + "versions/" + pushedOnlyVersion(t, ctx, c, pushed) + "/", "names": []string{"only"}})
		if got := cr("digest", p.content+"/lc/pushed:only"); got != only.Digest.String() {
			t.Errorf("lc/pushed:only copied back from an old version: %s", got)
		}
		// The registry still takes pushes into it.
		runIn(t, ctx, "", nil, skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", creds,
			"docker://"+upstream+"/lc/app:v2", "docker://"+p.content+"/lc/pushed:again")
		if got := cr("digest", p.content+"/lc/pushed:again"); got != other.Digest.String() {
			t.Errorf("pushed again: %s", got)
		}
	})
	t.Run("retention", func(t *testing.T) {
		ok(c.must(ctx, "PATCH", prod, map[string]any{"retain_repo_versions": 1}))
		versions := ok(c.must(ctx, "GET", prod+"versions/", nil))
		if versions["count"] != 1.0 {
			t.Errorf("prod keeps %v versions with retain_repo_versions 1", versions["count"])
		}
		if got := pullAll("lc/prod:multi"); got != list.Digest {
			t.Errorf("lc/prod:multi after retention: %s", got)
		}
	})
	t.Run("deletes and cleanup", func(t *testing.T) {
		status, out, err := c.call(ctx, "DELETE", pushed, nil)
		if err != nil || status != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), `"lc/pushed"`) {
			t.Errorf("delete a served repository: %d %v %v", status, out, err)
		}
		dists := ok(c.must(ctx, "GET", "/pulp/api/v3/docker-distributions/?base_path=lc/pushed", nil))["results"].([]any)
		ok(c.must(ctx, "DELETE", dists[0].(map[string]any)["_href"].(string), nil))
		if tk := ok(c.wait(ctx, ok(c.must(ctx, "DELETE", pushed, nil))["task"].(string))); taskError(tk) != "" {
			t.Fatalf("delete pushed: %s", taskError(tk))
		}
		tk := ok(c.run(ctx, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0}))
		if taskError(tk) != "" {
			t.Fatalf("cleanup: %s", taskError(tk))
		}
		done := map[string]float64{}
		for _, r := range tk["progress_reports"].([]any) {
			r := r.(map[string]any)
			done[r["code"].(string)] = r["done"].(float64)
		}
		// Held by the pushed repository only: the "only" image (tag,
		// manifest, config, layer) and the tags "latest" and "again"; and
		// by prod's versions that retention deleted: the tag "stable".
		if done["clean-up.content"] != 7 || done["clean-up.blobs"] != 2 || done["clean-up.bytes"] < 7000 {
			t.Errorf("cleanup reports %v, want 7 units, 2 blobs, over 7000 bytes", done)
		}
		// What versions hold still pulls, every blob checked.
		for _, ref := range []string{"lc/prod:multi", "lc/synced:multi"} {
			if got := pullAll(ref); got != list.Digest {
				t.Errorf("%s after cleanup: %s", ref, got)
			}
		}
		if got := cr("digest", p.content+"/lc/synced:v2"); got != other.Digest.String() {
			t.Errorf("lc/synced:v2 after cleanup: %s", got)
		}
	})
}

// pushedOnlyVersion returns the number of the first version of repo that
// holds the tag "only".
func pushedOnlyVersion(t *testing.T, ctx context.Context, c *api, repo string) string {
	t.Helper()
	for n := 1; n < 20; n++ {
		h, err := c.unitHref(ctx, fmt.Sprintf("%sversions/%d/", repo, n), "manifest-tags", "name=only")
		if err != nil {
			t.Fatal(err)
		}
		if h != "" {
			return fmt.Sprint(n)
		}
	}
	t.Fatal("no version of the pushed repository holds the tag only")
	return ""
}

// TestOCIConformanceWithCleanup runs the OCI conformance suite, with push,
// while orphan cleanups with no protection time run back to back beside
// it, every repository the suite pushes to keeping only its latest
// version: every check still passes, and the cleanups did delete what the
// suite's deletes left behind.
func TestOCIConformanceWithCleanup(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	suite := buildConformance(t)
	p, password := startConformanceServer(t, buildServer(t))
	c := &api{base: "http://" + p.api, password: password}
	ctx, cancel := context.WithCancel(context.Background())
	var runs, units, blobs int
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			repos, err := c.results(ctx, "/pulp/api/v3/repositories/")
			for _, r := range repos {
				if r["retain_repo_versions"] == nil && ctx.Err() == nil {
					_, err = c.must(ctx, "PATCH", r["_href"].(string), map[string]any{"retain_repo_versions": 1})
				}
			}
			if err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			tk, err := c.run(ctx, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0})
			if ctx.Err() != nil {
				break
			}
			if err != nil || taskError(tk) != "" {
				done <- fmt.Errorf("cleanup: %v %v", err, tk)
				return
			}
			runs++
			for _, r := range tk["progress_reports"].([]any) {
				r := r.(map[string]any)
				switch r["code"] {
				case "clean-up.content":
					units += int(r["done"].(float64))
				case "clean-up.blobs":
					blobs += int(r["done"].(float64))
				}
			}
		}
		done <- nil
	}()
	r := runConformance(t, suite, pushEnv(p.content, password))
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	r.check(t, false)
	t.Logf("%d orphan cleanups ran beside the suite, deleting %d units and %d blobs", runs, units, blobs)
	if runs < 2 || units == 0 || blobs == 0 {
		t.Errorf("%d cleanups deleted %d units and %d blobs beside the suite: the test proved nothing", runs, units, blobs)
	}
}
