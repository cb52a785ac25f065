package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
)

// The walk-through of the pulp_docker README, run as written against the
// built server: httpie and jq drive the REST API, a Debian docker-registry
// is the upstream, podman and skopeo pull from Mooring.
//
// The README's ports are used as they are, 24817 for the API and 24816 for
// the registry; the test fails, saying so, when either is taken.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	for _, tool := range []string{"http", "jq", "podman", "skopeo", regtest.DistributionBinary, "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("end-to-end test needs %s (Debian packages httpie, jq, podman, skopeo, docker-registry): %v", tool, err)
		}
	}
	for _, port := range []string{"24816", "24817"} {
		ln, err := net.Listen("tcp", "localhost:"+port)
		if err != nil {
			t.Fatalf("port %s, which the README's commands use, is taken: %v", port, err)
		}
		ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	upstream := regtest.StartDistribution(t)
	pushed := pushWalkthroughImages(ctx, t, upstream)

	// The binary users run, built as they would build it.
	dir := t.TempDir()
	bin := buildServer(t)
	password := randomHex(12)
	srv := exec.Command(bin, "-data-dir", filepath.Join(dir, "data"))
	srv.Env = append(os.Environ(), "MOORING_ADMIN_PASSWORD="+password, "MOORING_LOG_LEVEL=debug")
	var srvLog bytes.Buffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if killed, err := testproc.Terminate(srv, 30*time.Second); killed {
			t.Errorf("server did not stop within 30s of SIGTERM")
		} else if err != nil {
			t.Errorf("server did not shut down cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", srvLog.String())
		}
	})
	waitFor(t, "http://localhost:24816/v2/")

	// httpie reads credentials from ~/.netrc, as the README sets it up.
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine localhost\nlogin admin\npassword "+password+"\n"), 0o600)
	// Without a terminal httpie would read stdin as the request body;
	// a person at a terminal has none, so tell it to ignore stdin.
	os.MkdirAll(filepath.Join(home, ".config", "httpie"), 0o700)
	os.WriteFile(filepath.Join(home, ".config", "httpie", "config.json"), []byte(`{"default_options": ["--ignore-stdin"]}`), 0o600)
	podmanEnv := podmanConfig(t, dir)

	// Each step is the README's command; "$OUT" keeps what it printed.
	sh := func(script string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home, "UPSTREAM=http://"+upstream)
		cmd.Env = append(cmd.Env, podmanEnv...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s\n%v\nstdout:\n%s\nstderr:\n%s", script, err, out, stderr.String())
		}
		t.Logf("$ %s\n%s", strings.TrimSpace(script), out)
		return string(out)
	}
	env := func() string {
		return "export REPO_HREF=$(http :24817/pulp/api/v3/repositories/ | jq -r '.results[] | select(.name == \"foo\") | ._href')\n" +
			"export REMOTE_HREF=$(http :24817/pulp/api/v3/remotes/docker/docker/ | jq -r '.results[] | select(.name == \"library/busybox\") | ._href')\n"
	}

	created := decode[map[string]any](t, sh(`http POST http://localhost:24817/pulp/api/v3/repositories/ name=foo`))
	if href, _ := created["_href"].(string); !strings.HasPrefix(href, "/pulp/api/v3/repositories/") {
		t.Fatalf("repository _href = %v", created["_href"])
	}
	repoHref := strings.TrimSpace(sh(`export REPO_HREF=$(http :24817/pulp/api/v3/repositories/ | jq -r '.results[] | select(.name == "foo") | ._href'); echo $REPO_HREF`))
	if repoHref != created["_href"] {
		t.Fatalf("REPO_HREF = %q, want %q", repoHref, created["_href"])
	}
	remote := decode[map[string]any](t, sh(`http POST http://localhost:24817/pulp/api/v3/remotes/docker/docker/ name='library/busybox' upstream_name='busybox' url="$UPSTREAM"`))
	if _, ok := remote["_href"].(string); !ok {
		t.Fatalf("remote response has no _href: %v", remote)
	}
	syncResp := decode[map[string]string](t, sh(env()+`http POST ':24817'$REMOTE_HREF'sync/' repository=$REPO_HREF`))
	taskHref := syncResp["task"]
	if !strings.HasPrefix(taskHref, "/pulp/api/v3/tasks/") {
		t.Fatalf("sync answered %v, want a task href", syncResp)
	}

	// A person would look at the task until it is done.
	var task map[string]any
	for deadline := time.Now().Add(2 * time.Minute); ; {
		task = decode[map[string]any](t, sh(`http GET http://localhost:24817`+taskHref))
		if st := task["state"]; st == "completed" || st == "failed" || st == "canceled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync task still %v after 2 minutes", task["state"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	if task["state"] != "completed" {
		t.Fatalf("sync task ended %v: %v", task["state"], task["error"])
	}
	if res, _ := task["created_resources"].([]any); len(res) != 1 || res[0] != repoHref+"versions/1/" {
		t.Errorf("task created_resources = %v, want [%sversions/1/]", task["created_resources"], repoHref)
	}

	version := decode[versionJSON](t, sh(env()+`http GET ':24817'$REPO_HREF'versions/1/'`))
	want := map[string]int{
		"docker.manifest":          pushed.manifests,
		"docker.manifest-list":     pushed.lists,
		"docker.manifest-blob":     pushed.blobs,
		"docker.manifest-tag":      pushed.manifestTags,
		"docker.manifest-list-tag": pushed.listTags,
	}
	for typ, n := range want {
		for part, summary := range map[string]map[string]countHref{"added": version.ContentSummary.Added, "present": version.ContentSummary.Present} {
			if summary[typ].Count != n {
				t.Errorf("content_summary.%s[%s].count = %d, want %d", part, typ, summary[typ].Count, n)
			}
		}
	}
	if len(version.ContentSummary.Removed) != 0 || version.Number != 1 || version.BaseVersion != nil {
		t.Errorf("version 1: number %d, base_version %v, removed %v", version.Number, version.BaseVersion, version.ContentSummary.Removed)
	}
	// The summary's links list what they count.
	blobsHref := version.ContentSummary.Present["docker.manifest-blob"].Href
	blobs := decode[map[string]any](t, sh(`http GET 'http://localhost:24817`+blobsHref+`'`))
	if blobs["count"] != float64(pushed.blobs) {
		t.Errorf("%s lists %v blobs, want %d", blobsHref, blobs["count"], pushed.blobs)
	}

	dist := decode[map[string]any](t, sh(env()+`http POST http://localhost:24817/pulp/api/v3/docker-distributions/ name='baz' base_path='foo' repository=$REPO_HREF`))
	if dist["registry_path"] != "localhost:24816/foo" || dist["base_path"] != "foo" {
		t.Errorf("distribution = %v", dist)
	}
	task = decode[map[string]any](t, sh(`http GET http://localhost:24817`+taskHref))
	if task["state"] != "completed" {
		t.Errorf("task state %v", task["state"])
	}

	// Every blob of the version is served with upstream's bytes.
	results, _ := blobs["results"].([]any)
	for _, res := range results {
		d := digest.Digest(res.(map[string]any)["digest"].(string))
		checkBlob(t, "http://"+upstream+"/v2/busybox/blobs/"+d.String(), d)
		checkBlob(t, "http://localhost:24816/v2/foo/blobs/"+d.String(), d)
	}

	// Every manifest Mooring serves is upstream's, byte for byte.
	for ref, d := range pushed.refs {
		for _, host := range []string{upstream, "localhost:24816"} {
			repo := "busybox"
			if host != upstream {
				repo = "foo"
			}
			got, mt, err := fetchManifest(ctx, host, repo, ref)
			if err != nil {
				t.Errorf("GET %s/%s manifest %s: %v", host, repo, ref, err)
				continue
			}
			if got != d {
				t.Errorf("%s/%s:%s has digest %s (%s), upstream pushed %s", host, repo, ref, got, mt, d)
			}
		}
	}

	sh(`podman pull --tls-verify=false localhost:24816/foo`)
	pulled := strings.TrimSpace(sh(`podman image inspect --format '{{.Digest}}' localhost:24816/foo`))
	if pulled != pushed.refs["latest"].String() {
		t.Errorf("podman pulled %s, upstream's latest is %s", pulled, pushed.refs["latest"])
	}
	sh(`skopeo copy --all --src-tls-verify=false docker://localhost:24816/foo:oci dir:oci-copy`)
	raw, err := os.ReadFile(filepath.Join(dir, "oci-copy", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); got != pushed.refs["oci"] {
		t.Errorf("skopeo copied an index with digest %s, upstream's is %s", got, pushed.refs["oci"])
	}
	sh(`skopeo copy --all --src-tls-verify=false docker://localhost:24816/foo:latest dir:list-copy`)
	raw, err = os.ReadFile(filepath.Join(dir, "list-copy", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); got != pushed.refs["latest"] {
		t.Errorf("skopeo copied a list with digest %s, upstream's is %s", got, pushed.refs["latest"])
	}
}

// checkBlob GETs a blob and checks its bytes hash to d.
func checkBlob(t *testing.T, url string, d digest.Digest) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	v := d.Verifier()
	n, _ := io.Copy(v, resp.Body)
	if resp.StatusCode != http.StatusOK || !v.Verified() || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("GET %s: %s, %d bytes, verified %v, Docker-Content-Digest %q", url, resp.Status, n, v.Verified(), resp.Header.Get("Docker-Content-Digest"))
	}
}

type countHref struct {
	Count int    `json:"count"`
	Href  string `json:"href"`
}

type versionJSON struct {
	Number         int     `json:"number"`
	BaseVersion    *string `json:"base_version"`
	ContentSummary struct {
		Added   map[string]countHref `json:"added"`
		Removed map[string]countHref `json:"removed"`
		Present map[string]countHref `json:"present"`
	} `json:"content_summary"`
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func waitFor(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%s did not answer within 30s", url)
}

// podmanConfig points podman at storage and configuration in dir, so the
// test neither needs nor touches /etc/containers or /var/lib/containers.
func podmanConfig(t *testing.T, dir string) []string {
	t.Helper()
	c := filepath.Join(dir, "containers")
	os.MkdirAll(c, 0o755)
	write := func(name, body string) string {
		p := filepath.Join(c, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	storage := write("storage.conf", fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %q\ngraphroot = %q\n",
		filepath.Join(c, "run"), filepath.Join(c, "graph")))
	registries := write("registries.conf", "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n")
	conf := write("containers.conf", "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n[containers]\n")
	return []string{
		"CONTAINERS_STORAGE_CONF=" + storage,
		"CONTAINERS_REGISTRIES_CONF=" + registries,
		"CONTAINERS_CONF=" + conf,
		"XDG_RUNTIME_DIR=" + filepath.Join(c, "xdg"),
		"TMPDIR=" + dir,
	}
}

// fetchManifest GETs a manifest the way a modern client does and returns
// the digest of the bytes received, checked against Docker-Content-Digest.
func fetchManifest(ctx context.Context, host, repo, ref string) (digest.Digest, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json"}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %s: %s", resp.Status, raw)
	}
	got := digest.FromBytes(raw)
	if h := resp.Header.Get("Docker-Content-Digest"); h != got.String() {
		return "", "", fmt.Errorf("Docker-Content-Digest %s, body digest %s", h, got)
	}
	return got, resp.Header.Get("Content-Type"), nil
}

// pushedContent is what was pushed upstream, as a sync should count it.
type pushedContent struct {
	manifests, lists, blobs, manifestTags, listTags int
	// refs maps every tag and every manifest digest to the digest it names.
	refs map[string]digest.Digest
}

// pushWalkthroughImages pushes to repository busybox upstream: two Docker
// images tagged v1 and v2, a Docker manifest list "latest" whose
// linux/amd64 image is a real one podman can unpack, and an OCI index
// "oci" of two OCI images.
func pushWalkthroughImages(ctx context.Context, t *testing.T, host string) pushedContent {
	t.Helper()
	p := pushedContent{refs: map[string]digest.Digest{}}
	must := func(d ocispec.Descriptor, err error) ocispec.Descriptor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		p.refs[d.Digest.String()] = d.Digest
		return d
	}
	v1 := must(regtest.PushImage(ctx, host, "busybox", "v1", regtest.ImageOpts{Seed: "v1", Layers: 2}))
	v2 := must(regtest.PushImage(ctx, host, "busybox", "v2", regtest.ImageOpts{Seed: "v2", Layers: 1, LayerSize: 256 << 10}))
	p.refs["v1"], p.refs["v2"] = v1.Digest, v2.Digest
	p.manifests, p.blobs, p.manifestTags = 2, 3+2, 2

	amd64 := must(pushRealImage(ctx, t, host, "busybox"))
	arm64 := must(regtest.PushImage(ctx, host, "busybox", "", regtest.ImageOpts{Seed: "arm", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}}))
	latest := must(regtest.PushIndex(ctx, host, "busybox", "latest", regtest.Docker, amd64, arm64))
	p.refs["latest"] = latest.Digest
	p.manifests, p.lists, p.blobs, p.listTags = p.manifests+2, 1, p.blobs+2+2, 1

	o1 := must(regtest.PushImage(ctx, host, "busybox", "", regtest.ImageOpts{Seed: "o1", Format: regtest.OCI}))
	o2 := must(regtest.PushImage(ctx, host, "busybox", "", regtest.ImageOpts{Seed: "o2", Format: regtest.OCI,
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}))
	oci := must(regtest.PushIndex(ctx, host, "busybox", "oci", regtest.OCI, o1, o2))
	p.refs["oci"] = oci.Digest
	p.manifests, p.lists, p.blobs, p.listTags = p.manifests+2, p.lists+1, p.blobs+2+2, p.listTags+1
	return p
}

// pushRealImage pushes a linux/amd64 Docker image whose layer is a real
// gzipped tar, so that podman can unpack it. It returns the manifest's
// descriptor with its platform; it is not tagged.
func pushRealImage(ctx context.Context, t *testing.T, host, repo string) (ocispec.Descriptor, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	body := []byte("hello from mooring\n")
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)})
	tw.Write(body)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	layer := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromBytes(gz.Bytes()), Size: int64(gz.Len())}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/hello.txt"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromBytes(tarBuf.Bytes())}},
	})
	configDesc := ocispec.Descriptor{MediaType: "application/vnd.docker.container.image.v1+json", Digest: digest.FromBytes(config), Size: int64(len(config))}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": configDesc, "layers": []ocispec.Descriptor{layer},
	})
	r, err := regtest.Repository(host, repo)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, b := range []struct {
		d   ocispec.Descriptor
		raw []byte
	}{{layer, gz.Bytes()}, {configDesc, config}} {
		if err := r.Blobs().Push(ctx, b.d, bytes.NewReader(b.raw)); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	desc := ocispec.Descriptor{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: digest.FromBytes(manifest), Size: int64(len(manifest)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	err = r.Manifests().Push(ctx, desc, bytes.NewReader(manifest))
	return desc, err
}
