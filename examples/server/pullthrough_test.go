package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/storage/s3/s3test"
)

// countingProxy is the upstream as the servers see it: a docker-registry
// behind a proxy counting GETs by kind ("manifests", "blobs").
type countingProxy struct {
	addr  string
	mu    sync.Mutex
	gets  map[string]int
	proxy http.Handler
}

func newCountingProxy(t *testing.T, upstream string) *countingProxy {
	t.Helper()
	target, _ := url.Parse("http://" + upstream)
	p := &countingProxy{gets: map[string]int{}, proxy: httputil.NewSingleHostReverseProxy(target)}
	p.addr = freeAddr(t)
	srv := &http.Server{Addr: p.addr, Handler: p}
	go srv.ListenAndServe()
	t.Cleanup(func() { srv.Close() })
	waitFor(t, "http://"+p.addr+"/v2/")
	return p
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		for _, k := range []string{"manifests", "blobs"} {
			if strings.Contains(r.URL.Path, "/"+k+"/") {
				p.mu.Lock()
				p.gets[k]++
				p.mu.Unlock()
			}
		}
	}
	p.proxy.ServeHTTP(w, r)
}

func (p *countingProxy) count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[kind]
}

// TestPullThroughScaleOut runs three server processes on one PostgreSQL
// database and one S3 bucket (versitygw) with a pull-through cache of a
// docker-registry. Clients of every process pull a name never seen, all
// at once: one repository, remote and distribution are made. They then
// pull one 32 MiB layer at once: each process fetches it once (single
// flight is per process), every client gets it whole, and it is stored
// once and correctly in the bucket, pulled again without the upstream.
// podman pull and skopeo copy go through the cache, and skopeo copies a
// repository synced with the on_demand policy.
func TestPullThroughScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	dsn, db := postgresSchema(t)
	s3cfg := s3test.Start(t)
	upstream := regtest.StartDistribution(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	realImg, err := pushRealImage(ctx, t, upstream, "library/real")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := regtest.Repository(upstream, "library/real"); err != nil {
		t.Fatal(err)
	} else if err := r.Tag(ctx, realImg, "latest"); err != nil {
		t.Fatal(err)
	}
	const size = 32 << 20
	big, err := regtest.PushImage(ctx, upstream, "big", "v1", regtest.ImageOpts{Seed: "pt-scale", LayerSize: size})
	if err != nil {
		t.Fatal(err)
	}
	layer := regtest.LayerDescriptor("pt-scale", 0, size, "").Digest
	proxy := newCountingProxy(t, upstream)

	bin := buildServer(t)
	password := randomHex(12)
	storageURL := fmt.Sprintf("s3://%s/pullthrough?endpoint=%s&region=%s&pathstyle=true",
		s3cfg.Bucket, url.QueryEscape(s3cfg.Endpoint), s3cfg.Region)
	env := []string{"MOORING_ADMIN_PASSWORD=" + password,
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey}
	var procs []*serverProc
	for i := range 3 {
		p := &serverProc{name: fmt.Sprintf("p%d", i), bin: bin, env: env, api: freeAddr(t), content: freeAddr(t)}
		p.args = []string{"-api-addr", p.api, "-content-addr", p.content, "-database", dsn, "-storage", storageURL,
			"-workers", "1", "-data-dir", t.TempDir()}
		p.start(t)
		procs = append(procs, p)
	}
	api := &restClient{t: t, base: "http://" + procs[0].api, password: password}
	ptr := api.post("/pulp/api/v3/remotes/docker/pull-through/", map[string]any{"name": "up", "url": "http://" + proxy.addr})
	api.post("/pulp/api/v3/docker-pull-through-distributions/", map[string]any{"name": "hub", "base_path": "hub", "remote": ptr["_href"]})

	// Every process's clients pull a name never seen, at once.
	var wg sync.WaitGroup
	for _, p := range procs {
		for range 3 {
			wg.Go(func() {
				if got, _, err := fetchManifest(ctx, p.content, "hub/big", "v1"); err != nil || got != big.Digest {
					t.Errorf("first pull through %s: %s, %v", p.name, got, err)
				}
			})
		}
	}
	wg.Wait()
	for table, where := range map[string]string{"repositories": "name", "remotes": "name", "distributions": "base_path"} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE "+where+" = 'hub/big'").Scan(&n); err != nil || n != 1 {
			t.Errorf("%s for hub/big: %d, %v; want exactly 1", table, n, err)
		}
	}
	if n := proxy.count("manifests"); n > 3 {
		t.Errorf("%d upstream manifest GETs for a first pull through 3 processes; want at most one each", n)
	}

	// The same layer through every process at once.
	before := proxy.count("blobs")
	for _, p := range procs {
		for range 3 {
			wg.Go(func() { getBlob(t, p.content, "hub/big", layer) })
		}
	}
	wg.Wait()
	if n := proxy.count("blobs") - before; n < 1 || n > 3 {
		t.Errorf("9 clients of 3 processes made %d upstream GETs of the layer; want one per process at most", n)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var onDemand bool
		if err := db.QueryRowContext(ctx, "SELECT on_demand FROM contents WHERE digest = ? AND type = 'docker.manifest-blob'", layer.String()).Scan(&onDemand); err != nil {
			t.Fatal(err)
		}
		if !onDemand {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the layer was never marked stored")
		}
		time.Sleep(100 * time.Millisecond)
	}
	before = proxy.count("blobs")
	for _, p := range procs {
		getBlob(t, p.content, "hub/big", layer)
	}
	if n := proxy.count("blobs") - before; n != 0 {
		t.Errorf("pulls of the stored layer made %d upstream GETs", n)
	}

	// Real clients: podman pull and skopeo copy through the cache, and
	// skopeo copy of an on_demand sync.
	if _, err := exec.LookPath("podman"); err == nil {
		podmanPull(ctx, t, procs[1].content+"/hub/library/real:latest", realImg.Digest)
	} else if os.Getenv("MOORING_TEST_REQUIRE") != "" {
		t.Fatalf("podman is not installed: %v", err)
	} else {
		t.Logf("podman pull skipped: %v", err)
	}
	rm := api.post("/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "lazy", "url": "http://" + proxy.addr,
		"upstream_name": "library/real", "policy": "on_demand"})
	repo := api.post("/pulp/api/v3/repositories/", map[string]any{"name": "lazy"})
	tk := api.post(rm["_href"].(string)+"sync/", map[string]any{"repository": repo["_href"]})
	if st := api.waitTask(ctx, tk["task"].(string)); st.State != "completed" {
		t.Fatalf("on_demand sync: %s %+v", st.State, st.Error)
	}
	api.post("/pulp/api/v3/docker-distributions/", map[string]any{"name": "lazy", "base_path": "lazy", "repository": repo["_href"]})
	if _, err := exec.LookPath("skopeo"); err != nil {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("skopeo is not installed: %v", err)
		}
		t.Skipf("skopeo copy skipped: %v", err)
	}
	for _, src := range []string{procs[2].content + "/hub/library/real:latest", procs[0].content + "/lazy:latest"} {
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.CommandContext(ctx, "skopeo", "copy", "--src-tls-verify=false", "docker://"+src, "dir:"+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", src, err, b)
		}
		raw, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil || digest.FromBytes(raw) != realImg.Digest {
			t.Errorf("skopeo copied %s as %s (%v), want %s", src, digest.FromBytes(raw), err, realImg.Digest)
		}
	}
}

// getBlob GETs a blob from a registry and checks its digest.
func getBlob(t *testing.T, host, repo string, d digest.Digest) {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, resp.Body); err != nil || resp.StatusCode != http.StatusOK || !v.Verified() {
		t.Errorf("blob %s through %s: %s, verified %v, %v", d, host, resp.Status, v.Verified(), err)
	}
}
