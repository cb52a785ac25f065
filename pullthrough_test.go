package mooring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// upstream is a docker-registry behind a proxy that counts requests by
// method and kind ("GET manifests", "HEAD manifests", "GET blobs") and
// can be told to answer in its stead.
type upstream struct {
	reg   *regtest.Distribution
	srv   *httptest.Server
	proxy http.Handler

	mu       sync.Mutex
	counts   map[string]int
	override http.HandlerFunc
}

func startCountedUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{reg: regtest.StartDistributionWith(t, regtest.DistributionOptions{}), counts: map[string]int{}}
	target, _ := url.Parse("http://" + u.reg.Host)
	u.proxy = httputil.NewSingleHostReverseProxy(target)
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	for _, k := range []string{"manifests", "blobs", "tags"} {
		if strings.Contains(r.URL.Path, "/"+k+"/") {
			kind = k
		}
	}
	u.mu.Lock()
	u.counts[r.Method+" "+kind]++
	override := u.override
	u.mu.Unlock()
	if override != nil {
		override(w, r)
		return
	}
	u.proxy.ServeHTTP(w, r)
}

func (u *upstream) count(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[key]
}

func (u *upstream) reset() {
	u.mu.Lock()
	u.counts = map[string]int{}
	u.mu.Unlock()
}

func (u *upstream) answer(h http.HandlerFunc) {
	u.mu.Lock()
	u.override = h
	u.mu.Unlock()
}

// cache is a Mooring serving a pull-through distribution "hub" of an
// upstream on an httptest registry.
type cache struct {
	m   *mooring.Mooring
	reg *httptest.Server
	up  *upstream
	ptr *remote.PullThroughRemote
	pt  *distribution.PullThroughDistribution
}

func newCache(t *testing.T, db *bun.DB, up *upstream, ttl time.Duration, configure func(*remote.PullThroughRemote)) *cache {
	t.Helper()
	ctx := context.Background()
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mooring.New(ctx, db, blobs, mooring.Options{
		Logger:   slog.New(slog.DiscardHandler),
		Registry: distribution.Options{TTL: time.Nanosecond},
		Fetch:    remote.FetcherOptions{Cooldown: 200 * time.Millisecond, Timeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &cache{m: m, up: up}
	c.ptr = remote.NewPullThrough("hub", up.srv.URL)
	if configure != nil {
		configure(c.ptr)
	}
	if err := m.Remotes.CreatePullThrough(ctx, c.ptr); err != nil {
		t.Fatal(err)
	}
	c.pt = &distribution.PullThroughDistribution{Name: "hub", BasePath: "hub", RemoteID: c.ptr.ID, TagTTLSeconds: int(ttl / time.Second)}
	if err := m.CreatePullThroughDistribution(ctx, c.pt); err != nil {
		t.Fatal(err)
	}
	c.reg = httptest.NewServer(m.RegistryHandler(registryapi.Options{}))
	t.Cleanup(c.reg.Close)
	return c
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

// get makes a registry request to the cache.
func (c *cache) get(method, path string, header ...string) reply {
	req, _ := http.NewRequest(method, c.reg.URL+path, nil)
	req.Header.Set("Accept", strings.Join(content.ManifestMediaTypes, ","))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// code returns the registry error code of a reply.
func (r reply) code() string {
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return fmt.Sprintf("%d %s", r.status, r.body)
	}
	return e.Errors[0].Code
}

func push(t *testing.T, up *upstream, repo, tag string, o regtest.ImageOpts) ocispec.Descriptor {
	t.Helper()
	d, err := regtest.PushImage(context.Background(), up.reg.Host, repo, tag, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// manifestOf reads the layer digests of the manifest a reply carries.
func manifestOf(t *testing.T, r reply) []ocispec.Descriptor {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not a manifest: %d %s", r.status, r.body)
	}
	return append([]ocispec.Descriptor{m.Config}, m.Layers...)
}

// TestPullThroughFirstPull: 30 clients pulling a name never seen at once,
// anonymously, get the upstream's manifest; one repository, remote and
// distribution are made, one manifest request goes upstream, and the
// version holds the manifest, the tag and the blobs, on-demand. Blobs
// then come through the cache, each fetched once; pulls by digest are
// local.
func TestPullThroughFirstPull(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		up := startCountedUpstream(t)
		want := push(t, up, "library/app", "v1", regtest.ImageOpts{Seed: "first", Layers: 2, LayerSize: 64 << 10})
		c := newCache(t, db, up, time.Minute, nil)

		var wg sync.WaitGroup
		replies := make([]reply, 30)
		for i := range replies {
			wg.Go(func() { replies[i] = c.get("GET", "/v2/hub/library/app/manifests/v1") })
		}
		wg.Wait()
		for i, r := range replies {
			if r.status != http.StatusOK || digest.FromBytes(r.body) != want.Digest {
				t.Fatalf("client %d: %d %s", i, r.status, r.body)
			}
		}
		if n := up.count("GET manifests"); n != 1 {
			t.Errorf("%d upstream manifest GETs for 30 clients, want 1", n)
		}
		repo, err := c.m.Repositories.RepositoryByName(ctx, "hub/library/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, n, _ := c.m.Repositories.ListRepositories(ctx, repository.RepositoryFilter{}); n != 1 {
			t.Errorf("%d repositories, want 1", n)
		}
		if rs, n, _ := c.m.Remotes.List(ctx, remote.Filter{}); n != 1 || rs[0].Name != "hub/library/app" || rs[0].Policy != remote.PolicyOnDemand || rs[0].UpstreamName != "library/app" {
			t.Errorf("remotes: %+v", rs)
		}
		if ds, n, _ := c.m.Distributions.List(ctx, distribution.Filter{}); n != 1 || ds[0].BasePath != "hub/library/app" || *ds[0].PullThroughID != c.pt.ID {
			t.Errorf("distributions: %+v", ds)
		}
		sum, err := c.m.Repositories.Summary(ctx, repo.ID, 1)
		if err != nil || sum.Present[content.TypeManifest] != 1 || sum.Present[content.TypeManifestTag] != 1 || sum.Present[content.TypeBlob] != 3 {
			t.Errorf("version 1: %+v %v", sum, err)
		}

		up.reset()
		for _, d := range manifestOf(t, replies[0]) {
			h := c.get("HEAD", "/v2/hub/library/app/blobs/"+d.Digest.String())
			if h.status != http.StatusOK || h.header.Get("Content-Length") != fmt.Sprint(d.Size) {
				t.Errorf("HEAD %s: %d %v", d.Digest, h.status, h.header)
			}
		}
		if n := up.count("GET blobs") + up.count("HEAD blobs"); n != 0 {
			t.Errorf("HEAD of on-demand blobs made %d upstream requests", n)
		}
		for range 2 {
			for _, d := range manifestOf(t, replies[0]) {
				r := c.get("GET", "/v2/hub/library/app/blobs/"+d.Digest.String())
				if r.status != http.StatusOK || digest.FromBytes(r.body) != d.Digest {
					t.Fatalf("blob %s: %d %v", d.Digest, r.status, r.err)
				}
			}
			waitUntil(t, "the blobs to be stored", func() bool {
				for _, d := range manifestOf(t, replies[0]) {
					if _, err := c.m.Blobs.Stat(ctx, d.Digest); err != nil {
						return false
					}
				}
				return true
			})
		}
		if n := up.count("GET blobs"); n != 3 {
			t.Errorf("%d upstream blob GETs for 3 blobs pulled twice, want 3", n)
		}
		if r := c.get("GET", "/v2/hub/library/app/manifests/"+want.Digest.String()); r.status != http.StatusOK || up.count("GET manifests")+up.count("HEAD manifests") != 0 {
			t.Errorf("pull by digest: %d, %d upstream manifest requests", r.status, up.count("GET manifests")+up.count("HEAD manifests"))
		}
		if r := c.get("GET", "/v2/hub/library/app/tags/list"); r.status != http.StatusOK || !strings.Contains(string(r.body), `"v1"`) {
			t.Errorf("tags: %d %s", r.status, r.body)
		}
	})
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestPullThroughLists: a manifest list is recorded as pulled; its
// children are fetched when a client asks for them by digest, or for a
// client that takes no lists.
func TestPullThroughLists(t *testing.T) {
	up := startCountedUpstream(t)
	ctx := context.Background()
	amd := push(t, up, "multi", "", regtest.ImageOpts{Seed: "l-amd64"})
	arm := push(t, up, "multi", "", regtest.ImageOpts{Seed: "l-arm64", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
	list, err := regtest.PushIndex(ctx, up.reg.Host, "multi", "latest", regtest.Docker, amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	c := newCache(t, dbtest.Open(t, "sqlite"), up, time.Minute, nil)
	if r := c.get("GET", "/v2/hub/multi/manifests/latest"); r.status != http.StatusOK || digest.FromBytes(r.body) != list.Digest {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := c.get("GET", "/v2/hub/multi/manifests/"+arm.Digest.String()); r.status != http.StatusOK || digest.FromBytes(r.body) != arm.Digest {
		t.Fatalf("child by digest: %d %s", r.status, r.body)
	}
	if r := c.get("GET", "/v2/hub/multi/manifests/latest", "Accept", content.MediaTypeDockerManifest); r.status != http.StatusOK || digest.FromBytes(r.body) != amd.Digest {
		t.Fatalf("a client that takes no lists: %d %s", r.status, r.body)
	}
	if r := c.get("GET", "/v2/hub/multi/manifests/sha256:"+strings.Repeat("0", 64)); r.code() != "MANIFEST_UNKNOWN" {
		t.Errorf("a digest the upstream lacks: %s", r.code())
	}
	if r := c.get("GET", "/v2/hub/nothing-here/manifests/v1"); r.code() != "MANIFEST_UNKNOWN" && r.code() != "NAME_UNKNOWN" {
		t.Errorf("a name the upstream lacks: %s", r.code())
	}
	if _, err := c.m.Repositories.RepositoryByName(ctx, "hub/nothing-here"); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("a name the upstream lacks made a repository: %v", err)
	}
}

// TestPullThroughTTL: within the tag TTL, 100 pulls of a tag make no
// upstream request at all; once it has passed, one HEAD request, and a GET
// only when the tag moved.
func TestPullThroughTTL(t *testing.T) {
	up := startCountedUpstream(t)
	push(t, up, "app", "v1", regtest.ImageOpts{Seed: "ttl-1"})
	c := newCache(t, dbtest.Open(t, "sqlite"), up, time.Hour, nil)
	if r := c.get("GET", "/v2/hub/app/manifests/v1"); r.status != http.StatusOK {
		t.Fatalf("first pull: %d %s", r.status, r.body)
	}
	up.reset()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if r := c.get("GET", "/v2/hub/app/manifests/v1"); r.status != http.StatusOK {
				t.Errorf("pull: %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	if n := up.count("GET manifests") + up.count("HEAD manifests"); n > 1 {
		t.Errorf("100 pulls within the TTL made %d upstream requests, want at most 1", n)
	}

	// TTL 0: every pull asks, with one HEAD.
	c.pt.TagTTLSeconds = 0
	if err := c.m.UpdatePullThroughDistribution(context.Background(), c.pt); err != nil {
		t.Fatal(err)
	}
	up.reset()
	for range 3 {
		c.get("GET", "/v2/hub/app/manifests/v1")
	}
	if h, g := up.count("HEAD manifests"), up.count("GET manifests"); h != 3 || g != 0 {
		t.Errorf("3 pulls of an unchanged tag: %d HEADs, %d GETs; want 3, 0", h, g)
	}
	moved := push(t, up, "app", "v1", regtest.ImageOpts{Seed: "ttl-2"})
	if r := c.get("GET", "/v2/hub/app/manifests/v1"); r.status != http.StatusOK || digest.FromBytes(r.body) != moved.Digest {
		t.Errorf("after the tag moved upstream: %d, %s, want %s", r.status, digest.FromBytes(r.body), moved.Digest)
	}
	repo, _ := c.m.Repositories.RepositoryByName(context.Background(), "hub/app")
	if repo.LatestVersion != 2 {
		t.Errorf("the moved tag made version %d, want 2", repo.LatestVersion)
	}
}

// TestPullThroughStaleIfError: with the upstream stopped, a cached tag is
// served as cached; what is not cached fails with 502 or 504, with a
// message; an upstream answering 429 is passed on as TOOMANYREQUESTS, and
// not asked again until its Retry-After has passed.
func TestPullThroughStaleIfError(t *testing.T) {
	up := startCountedUpstream(t)
	want := push(t, up, "app", "v1", regtest.ImageOpts{Seed: "stale"})
	push(t, up, "app", "v2", regtest.ImageOpts{Seed: "stale-2"})
	c := newCache(t, dbtest.Open(t, "sqlite"), up, 0, nil) // every pull asks upstream
	if r := c.get("GET", "/v2/hub/app/manifests/v1"); r.status != http.StatusOK {
		t.Fatalf("first pull: %d %s", r.status, r.body)
	}

	// 429 with a Retry-After longer than a pull waits (2 s): passed on;
	// the cached tag still served.
	up.answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`, http.StatusTooManyRequests)
	})
	if r := c.get("GET", "/v2/hub/app/manifests/v1"); r.status != http.StatusOK || digest.FromBytes(r.body) != want.Digest {
		t.Errorf("cached tag while the upstream answers 429: %d %s", r.status, r.body)
	}
	r := c.get("GET", "/v2/hub/app/manifests/v2")
	if r.status != http.StatusTooManyRequests || r.code() != "TOOMANYREQUESTS" || r.header.Get("Retry-After") == "" {
		t.Errorf("uncached tag while the upstream answers 429: %d %v %s", r.status, r.header, r.body)
	}
	up.reset()
	if r := c.get("GET", "/v2/hub/app/manifests/v2"); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || up.count("GET manifests")+up.count("HEAD manifests") != 0 {
		t.Errorf("uncached tag within the Retry-After: %d %v %s, after %d upstream requests; want 429 and none", r.status, r.header, r.body,
			up.count("GET manifests")+up.count("HEAD manifests"))
	}
	time.Sleep(3 * time.Second)

	// The upstream stops.
	up.answer(nil)
	up.reg.Stop()
	up.srv.Close()
	if r := c.get("GET", "/v2/hub/app/manifests/v1"); r.status != http.StatusOK || digest.FromBytes(r.body) != want.Digest {
		t.Errorf("cached tag with the upstream stopped: %d %s", r.status, r.body)
	}
	r = c.get("GET", "/v2/hub/app/manifests/v2")
	if (r.status != http.StatusBadGateway && r.status != http.StatusGatewayTimeout) || !strings.Contains(string(r.body), "hub") && !strings.Contains(string(r.body), "127.0.0.1") {
		t.Errorf("uncached tag with the upstream stopped: %d %s, want 502 or 504 with a message", r.status, r.body)
	}
	layer := regtest.LayerDescriptor("stale", 0, 1024, "").Digest
	if r := c.get("GET", "/v2/hub/app/blobs/"+layer.String()); r.status != http.StatusBadGateway && r.status != http.StatusGatewayTimeout {
		t.Errorf("on-demand blob with the upstream stopped: %d %s", r.status, r.body)
	}
}

// TestPullThroughBlobs: 20 clients pulling one new 64 MiB layer at once
// cause one upstream GET, and each gets the layer; a range of a blob not
// yet stored is served; bytes that do not match the blob break the
// clients' connections and nothing is stored.
func TestPullThroughBlobs(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB layer skipped in -short mode")
	}
	ctx := context.Background()
	up := startCountedUpstream(t)
	const size = 64 << 20
	push(t, up, "big", "v1", regtest.ImageOpts{Seed: "big-64", LayerSize: size})
	c := newCache(t, dbtest.Open(t, "sqlite"), up, time.Minute, nil)
	if r := c.get("GET", "/v2/hub/big/manifests/v1"); r.status != http.StatusOK {
		t.Fatalf("manifest: %d %s", r.status, r.body)
	}
	layer := regtest.LayerDescriptor("big-64", 0, size, "").Digest
	up.reset()
	var wg sync.WaitGroup
	got := make([]digest.Digest, 20)
	for i := range got {
		wg.Go(func() {
			resp, err := http.Get(c.reg.URL + "/v2/hub/big/blobs/" + layer.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			dg := digest.Canonical.Digester()
			if _, err := io.Copy(dg.Hash(), resp.Body); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			got[i] = dg.Digest()
		})
	}
	wg.Wait()
	for i, d := range got {
		if d != layer {
			t.Errorf("client %d got %s", i, d)
		}
	}
	if n := up.count("GET blobs"); n != 1 {
		t.Errorf("20 clients made %d upstream blob GETs, want 1", n)
	}
	waitUntil(t, "the layer to be stored", func() bool { _, err := c.m.Blobs.Stat(ctx, layer); return err == nil })

	// A second image: a range before it is stored, then corrupt bytes.
	push(t, up, "big", "v2", regtest.ImageOpts{Seed: "small", LayerSize: 1 << 20})
	small := regtest.LayerDescriptor("small", 0, 1<<20, "").Digest
	want, _ := io.ReadAll(regtest.LayerReader("small", 0, 1<<20))
	c.get("GET", "/v2/hub/big/manifests/v2")
	corrupt := func(on bool) {
		if !on {
			up.answer(nil)
			return
		}
		up.answer(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, small.String()) || r.Method != http.MethodGet {
				up.proxy.ServeHTTP(w, r)
				return
			}
			bad := bytes.Clone(want)
			bad[len(bad)-10] ^= 0xff
			w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
			w.Write(bad[:len(bad)/2])
			http.NewResponseController(w).Flush()
			time.Sleep(300 * time.Millisecond) // the cache has sent its status line by now
			w.Write(bad[len(bad)/2:])
		})
	}
	corrupt(true)
	resp, err := http.Get(c.reg.URL + "/v2/hub/big/blobs/" + small.String())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || resp.StatusCode != http.StatusOK || len(body) >= len(want) {
		t.Errorf("corrupt upstream bytes: %d, %d of %d bytes, %v; want a connection broken before the last byte", resp.StatusCode, len(body), len(want), err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := c.m.Blobs.Stat(ctx, small); err == nil {
		t.Error("corrupt bytes were stored")
	}
	corrupt(false)
	time.Sleep(300 * time.Millisecond) // the cooldown
	r := c.get("GET", "/v2/hub/big/blobs/"+small.String(), "Range", "bytes=1000-1999")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, want[1000:2000]) {
		t.Errorf("range of a blob not stored: %d, %d bytes", r.status, len(r.body))
	}
}

// TestPullThroughBudget: over its max_size, a cache gives back the bytes
// of the blobs pulled least recently; they are fetched again when pulled.
func TestPullThroughBudget(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		up := startCountedUpstream(t)
		const size = 256 << 10
		for _, n := range []string{"a", "b", "c"} {
			push(t, up, "img-"+n, "v1", regtest.ImageOpts{Seed: "budget-" + n, LayerSize: size})
		}
		c := newCache(t, db, up, time.Minute, nil)
		max := int64(2*size + 4096)
		c.pt.MaxSize = &max
		if err := c.m.UpdatePullThroughDistribution(ctx, c.pt); err != nil {
			t.Fatal(err)
		}
		pull := func(n string) {
			t.Helper()
			r := c.get("GET", "/v2/hub/img-"+n+"/manifests/v1")
			for _, d := range manifestOf(t, r) {
				if b := c.get("GET", "/v2/hub/img-"+n+"/blobs/"+d.Digest.String()); b.status != http.StatusOK || digest.FromBytes(b.body) != d.Digest {
					t.Fatalf("blob %s of %s: %d", d.Digest, n, b.status)
				}
			}
			waitUntil(t, "blobs stored", func() bool {
				for _, d := range manifestOf(t, r) {
					if _, err := c.m.Blobs.Stat(ctx, d.Digest); err != nil {
						return false
					}
				}
				return true
			})
			if err := c.m.Registry.FlushPulls(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // distinct last-pull times
		}
		for _, n := range []string{"a", "b", "c"} {
			pull(n)
		}
		pull("a") // a is now the most recently pulled; b the least
		res, err := c.m.EnforceCacheBudgets(ctx)
		if err != nil || res.Blobs == 0 {
			t.Fatalf("enforce: %+v %v", res, err)
		}
		used, _ := c.m.Distributions.CacheUsage(ctx, c.pt.ID)
		if used > max {
			t.Errorf("%d bytes stored, budget %d", used, max)
		}
		layer := func(n string) digest.Digest { return regtest.LayerDescriptor("budget-"+n, 0, size, "").Digest }
		if _, err := c.m.Blobs.Stat(ctx, layer("b")); err == nil {
			t.Error("the least recently pulled layer kept its bytes")
		}
		if _, err := c.m.Blobs.Stat(ctx, layer("a")); err != nil {
			t.Error("the most recently pulled layer lost its bytes")
		}
		up.reset()
		pull("b")
		if up.count("GET blobs") == 0 {
			t.Error("an evicted layer was not fetched again")
		}
	})
}

// TestPullThroughRemoteRules: an excludes-only remote serves every name
// but those it excludes; names under a pull-through base path are its
// own, refused to other distributions and pushes; the remote a cache made
// cannot be deleted while its on-demand content needs it.
func TestPullThroughRemoteRules(t *testing.T) {
	ctx := context.Background()
	up := startCountedUpstream(t)
	push(t, up, "library/ok", "v1", regtest.ImageOpts{Seed: "ok"})
	push(t, up, "private/secret", "v1", regtest.ImageOpts{Seed: "secret"})
	c := newCache(t, dbtest.Open(t, "sqlite"), up, time.Minute, func(p *remote.PullThroughRemote) {
		p.Excludes = []string{"private/*"}
	})
	if r := c.get("GET", "/v2/hub/library/ok/manifests/v1"); r.status != http.StatusOK {
		t.Errorf("included name: %d %s", r.status, r.body)
	}
	if r := c.get("GET", "/v2/hub/private/secret/manifests/v1"); r.code() != "NAME_UNKNOWN" || up.count("GET manifests") != 1 {
		t.Errorf("excluded name: %s after %d upstream manifest GETs", r.code(), up.count("GET manifests"))
	}
	repo, err := c.m.Repositories.CreateRepository(ctx, "mine", "")
	if err != nil {
		t.Fatal(err)
	}
	err = c.m.Distributions.Create(ctx, &distribution.Distribution{Name: "mine", BasePath: "hub/mine", RepositoryID: &repo.ID})
	if !errors.Is(err, errdef.ErrConflict) {
		t.Errorf("a distribution under a pull-through base path: %v, want a conflict", err)
	}
	if _, err := c.m.Push.Target(ctx, "hub/library/ok", true); !errors.Is(err, errdef.ErrDenied) {
		t.Errorf("a push to a cached name: %v, want denied", err)
	}
	rm, err := c.m.Remotes.GetByName(ctx, "hub/library/ok")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.m.Remotes.Delete(ctx, rm.ID); !errors.Is(err, errdef.ErrConflict) || !strings.Contains(err.Error(), "hub/library/ok") {
		t.Errorf("delete the remote of a cache: %v, want a conflict naming its repository", err)
	}
	// Once its content is stored, the cache's remote may go; the next pull
	// that records something makes it again.
	for _, d := range manifestOf(t, c.get("GET", "/v2/hub/library/ok/manifests/v1")) {
		c.get("GET", "/v2/hub/library/ok/blobs/"+d.Digest.String())
	}
	waitUntil(t, "the cached remote to be deletable", func() bool { return c.m.Remotes.Delete(ctx, rm.ID) == nil })
	v2 := push(t, up, "library/ok", "v2", regtest.ImageOpts{Seed: "ok-2"})
	r := c.get("GET", "/v2/hub/library/ok/manifests/v2")
	if r.status != http.StatusOK || digest.FromBytes(r.body) != v2.Digest {
		t.Fatalf("a pull after the cache's remote was deleted: %d %s", r.status, r.body)
	}
	for _, d := range manifestOf(t, r) {
		if b := c.get("GET", "/v2/hub/library/ok/blobs/"+d.Digest.String()); b.status != http.StatusOK || digest.FromBytes(b.body) != d.Digest {
			t.Errorf("blob %s after the remote was made again: %d %s", d.Digest, b.status, b.body)
		}
	}
	if err := c.m.Remotes.DeletePullThrough(ctx, c.ptr.ID); !errors.Is(err, errdef.ErrConflict) || !strings.Contains(err.Error(), `"hub"`) {
		t.Errorf("delete a pull-through remote in use: %v", err)
	}
	// Its settings reach the remotes it made.
	c.ptr.ProxyURL = "http://127.0.0.1:1"
	if err := c.m.Remotes.UpdatePullThrough(ctx, c.ptr); err != nil {
		t.Fatal(err)
	}
	if rm, _ := c.m.Remotes.GetByName(ctx, "hub/library/ok"); rm.ProxyURL != "http://127.0.0.1:1" {
		t.Errorf("the made remote's proxy is %q", rm.ProxyURL)
	}
	if err := c.m.Distributions.DeletePullThrough(ctx, c.pt.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.m.Remotes.DeletePullThrough(ctx, c.ptr.ID); err != nil {
		t.Errorf("delete an unused pull-through remote: %v", err)
	}
	if _, err := c.m.Repositories.RepositoryByName(ctx, "hub/library/ok"); err != nil {
		t.Errorf("the cached repository went with its distribution: %v", err)
	}
}
