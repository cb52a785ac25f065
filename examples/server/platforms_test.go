package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestPlatformFilter syncs, through the built server, a six-platform OCI
// index with BuildKit attestations from a Debian docker-registry, with a
// remote filtered to two platforms, and checks it as clients see it:
// skopeo inspect --raw of the index through Mooring gives the upstream's
// bytes (so its digest); podman pull --platform linux/arm64 works; a
// child filtered out is MANIFEST_UNKNOWN saying so, which podman pull
// --platform and skopeo copy --all of the list show; skopeo copy of one
// platform works; the content listing shows which children are present. A resync with a wider filter adds
// children; a mirror resync with a narrower one removes them from the new
// version.
func TestPlatformFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("client tests skipped in -short mode")
	}
	skopeo := requireTool(t, "skopeo")
	podman := requireTool(t, "podman")
	requireTool(t, regtest.DistributionBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	upstream := regtest.StartDistribution(t)
	platforms := []ocispec.Platform{
		{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "arm", Variant: "v6"},
		{OS: "linux", Architecture: "ppc64le"}, {OS: "linux", Architecture: "s390x"},
	}
	mp, err := regtest.PushMultiPlatform(ctx, upstream, "multi/app", "latest", "platform-filter", platforms...)
	if err != nil {
		t.Fatal(err)
	}

	p, password := startServerWith(t, buildServer(t))
	c := &api{base: "http://" + p.api, password: password}
	must := func(out map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	remoteHref := must(c.must(ctx, "POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{
		"name": "multi", "url": "http://" + upstream, "upstream_name": "multi/app",
		"include_platforms": []string{"linux/amd64", "linux/arm64/v8"}}))["_href"].(string)
	repoHref := must(c.must(ctx, "POST", "/pulp/api/v3/repositories/", map[string]any{"name": "multi"}))["_href"].(string)
	sync := func(mirror bool) string {
		t.Helper()
		tk := must(c.run(ctx, remoteHref+"sync/", map[string]any{"repository": repoHref, "mirror": mirror}))
		if e := taskError(tk); e != "" {
			t.Fatalf("sync: %s", e)
		}
		created, _ := tk["created_resources"].([]any)
		if len(created) != 1 {
			t.Fatalf("sync made no version: %v", tk)
		}
		return created[0].(string)
	}
	v1 := sync(false)
	must(c.must(ctx, "POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "multi", "base_path": "multi/app", "repository": repoHref}))

	// The index through Mooring is the upstream's, byte for byte.
	inspect := func(host, ref string) string {
		return run(t, ctx, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/multi/app"+ref)
	}
	up, got := inspect(upstream, ":latest"), inspect(p.content, ":latest")
	if got != up || digest.FromString(got) != mp.Index.Digest {
		t.Fatalf("skopeo inspect --raw through Mooring: digest %s, upstream's %s (%s)", digest.FromString(got), digest.FromString(up), mp.Index.Digest)
	}
	if got := inspect(p.content, "@"+mp.Index.Digest.String()); got != up {
		t.Errorf("the index by digest through Mooring differs from the upstream's")
	}

	// podman pulls a chosen platform from the list.
	podmanPullPlatform(ctx, t, podman, p.content+"/multi/app:latest", "linux/arm64", "arm64")

	// A child filtered out is MANIFEST_UNKNOWN, saying why.
	checkFiltered(ctx, t, p.content, mp.Images[5].Digest, true)
	checkFiltered(ctx, t, p.content, mp.Attestations[5].Digest, true)
	checkFiltered(ctx, t, p.content, mp.Images[0].Digest, false)
	// Clients pulling a platform filtered out are told so.
	if out, err := exec.CommandContext(ctx, skopeo, "inspect", "--raw", "--tls-verify=false",
		"docker://"+p.content+"/multi/app@"+mp.Images[5].Digest.String()).CombinedOutput(); err == nil || !strings.Contains(string(out), "platform filter") {
		t.Errorf("skopeo inspect of the filtered s390x child: %v %s; want a failure naming the platform filter", err, out)
	}
	if err := pullPlatform(ctx, t, podman, p.content+"/multi/app:latest", "linux/s390x", ""); err == nil || !strings.Contains(err.Error(), "platform filter") {
		t.Errorf("podman pull --platform linux/s390x: %v; want a failure naming the platform filter", err)
	} else {
		t.Logf("podman pull --platform linux/s390x: %v", err)
	}

	// Copying the whole list needs every child; one platform copies.
	dest := t.TempDir()
	if out, err := exec.CommandContext(ctx, skopeo, "copy", "--all", "--src-tls-verify=false",
		"docker://"+p.content+"/multi/app:latest", "dir:"+filepath.Join(dest, "all")).CombinedOutput(); err == nil || !strings.Contains(string(out), "platform filter") {
		t.Errorf("skopeo copy --all of the filtered list: %v %s; want a failure naming the platform filter", err, out)
	}
	run(t, ctx, skopeo, "copy", "--override-os", "linux", "--override-arch", "arm64", "--src-tls-verify=false",
		"docker://"+p.content+"/multi/app:latest", "dir:"+filepath.Join(dest, "arm64"))
	if raw, err := os.ReadFile(filepath.Join(dest, "arm64", "manifest.json")); err != nil || digest.FromBytes(raw) != mp.Images[1].Digest {
		t.Errorf("skopeo copy --override-arch arm64 copied manifest %s (%v), want %s", digest.FromBytes(raw), err, mp.Images[1].Digest)
	}

	// The content listing says which children are present.
	checkPresent(ctx, t, c, v1, mp, []int{0, 1})

	// A wider filter, set with the mooring command: the resync adds the
	// arm/v7 image and attestation.
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine 127.0.0.1\nlogin admin\npassword "+password+"\n"), 0o600)
	cmd := &cli{t: t, bin: buildCLI(t), url: "http://" + p.api, home: home, dir: home}
	if _, stderr, code := cmd.run("remote", "update", "multi", "--include-platforms", "linux/amd64,linux"); code == 0 || !strings.Contains(stderr, "include_platforms") {
		t.Errorf("mooring remote update --include-platforms linux/amd64,linux: exit %d, %q; want a failure naming include_platforms", code, stderr)
	}
	cmd.ok("remote", "update", "multi", "--include-platforms", "linux/amd64,linux/arm64/v8,linux/arm/v7")
	v2 := sync(false)
	checkPresent(ctx, t, c, v2, mp, []int{0, 1, 2})
	checkFiltered(ctx, t, p.content, mp.Images[2].Digest, false)
	podmanPullPlatform(ctx, t, podman, p.content+"/multi/app:latest", "linux/arm/v7", "arm")

	// A narrower filter in mirror mode: the new version loses amd64 and
	// arm/v7; the index stays the upstream's.
	must(c.must(ctx, "PATCH", remoteHref, map[string]any{"include_platforms": []string{"linux/arm64"}}))
	v3 := sync(true)
	checkPresent(ctx, t, c, v3, mp, []int{1})
	checkFiltered(ctx, t, p.content, mp.Images[0].Digest, true)
	checkFiltered(ctx, t, p.content, mp.Images[2].Digest, true)
	if got := inspect(p.content, ":latest"); got != up {
		t.Errorf("after the mirror resync the index differs from the upstream's")
	}
	podmanPullPlatform(ctx, t, podman, p.content+"/multi/app:latest", "linux/arm64", "arm64")
}

// podmanPullPlatform pulls ref for platform with podman and checks the
// architecture of the image pulled.
func podmanPullPlatform(ctx context.Context, t *testing.T, podman, ref, platform, arch string) {
	t.Helper()
	if err := pullPlatform(ctx, t, podman, ref, platform, arch); err != nil {
		t.Error(err)
	}
}

// pullPlatform pulls ref for platform with podman, in a storage root of its
// own under a temporary directory, and, when arch is not empty, checks
// the architecture of the image pulled.
func pullPlatform(ctx context.Context, t *testing.T, podman, ref, platform, arch string) error {
	t.Helper()
	dir := t.TempDir()
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "runroot")
	env := append(os.Environ(), podmanConfig(t, dir)...)
	pm := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, podman, append([]string{"--root", root, "--runroot", runroot}, args...)...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", &cmdError{args: args, err: err, stderr: stderr.String()}
		}
		return strings.TrimSpace(string(out)), nil
	}
	t.Cleanup(func() { pm("rmi", "--all", "--force") })
	if _, err := pm("pull", "--platform", platform, "--tls-verify=false", ref); err != nil {
		return err
	}
	if arch == "" {
		return nil
	}
	got, err := pm("image", "inspect", "--format", "{{.Architecture}}", ref)
	if err != nil || got != arch {
		return fmt.Errorf("podman pulled %s for %s: architecture %q (%v), want %s", ref, platform, got, err, arch)
	}
	return nil
}

type cmdError struct {
	args   []string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.stderr
}

// checkFiltered GETs manifest d of multi/app from the registry at host:
// filtered, it must be MANIFEST_UNKNOWN saying the platform filter left
// it out; else it must be served.
func checkFiltered(ctx context.Context, t *testing.T, host string, d digest.Digest, filtered bool) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/multi/app/manifests/"+d.String(), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if !filtered {
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET child %s: %d %v, want 200", d, resp.StatusCode, body.Errors)
		}
		return
	}
	want := "manifest " + d.String() + " was filtered out by the remote's platform filter"
	if resp.StatusCode != http.StatusNotFound || len(body.Errors) != 1 || body.Errors[0].Code != "MANIFEST_UNKNOWN" ||
		!strings.Contains(body.Errors[0].Message, want) {
		t.Errorf("GET filtered child %s: %d %v, want 404 MANIFEST_UNKNOWN %q", d, resp.StatusCode, body.Errors, want)
	}
}

// checkPresent checks, through the REST content listing of version vhref,
// that the index's entries present are the images of platforms want with
// their attestations, and that the version's manifests are just those.
func checkPresent(ctx context.Context, t *testing.T, c *api, vhref string, mp *regtest.MultiPlatform, want []int) {
	t.Helper()
	lists, err := c.results(ctx, "/pulp/api/v3/content/docker/manifest-lists/?repository_version="+url.QueryEscape(vhref))
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 1 || lists[0]["digest"] != mp.Index.Digest.String() {
		t.Fatalf("lists in %s: %v", vhref, lists)
	}
	present := map[string]bool{}
	for _, i := range want {
		present[mp.Images[i].Digest.String()] = true
		present[mp.Attestations[i].Digest.String()] = true
	}
	l := lists[0]
	if l["manifests_present"] != float64(len(present)) || l["manifests_missing"] != float64(12-len(present)) {
		t.Errorf("%s: manifests_present %v, manifests_missing %v; want %d, %d", vhref, l["manifests_present"], l["manifests_missing"], len(present), 12-len(present))
	}
	for _, e := range l["entries"].([]any) {
		en := e.(map[string]any)
		if en["present"] != present[en["digest"].(string)] {
			t.Errorf("%s: entry %v (%v) present %v, want %v", vhref, en["digest"], en["platform"], en["present"], present[en["digest"].(string)])
		}
	}
	got, err := c.present(ctx, vhref)
	if err != nil {
		t.Fatal(err)
	}
	if got["docker.manifest"] != len(present) || got["docker.manifest-list"] != 1 || got["docker.manifest-blob"] != 2*len(present) {
		t.Errorf("%s content_summary present %v, want %d manifests, 1 list, %d blobs", vhref, got, len(present), 2*len(present))
	}
}
