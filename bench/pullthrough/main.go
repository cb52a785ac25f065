// Command pullthrough compares Mooring's pull-through cache with CNCF
// distribution (Debian's docker-registry) run as a pull-through cache
// ("proxy: remoteurl:" in its configuration) of the same upstream
// docker-registry, on one machine:
//
//	(a) the first pull of an image with one large layer (default 256 MiB)
//	    through each cache: time, and bytes fetched from the upstream;
//	(b) 20 clients pulling the same new 64 MiB layer at once through each:
//	    total time, bytes fetched from the upstream, and how far the peak
//	    RSS of the Mooring server process rises;
//	(c) time to the first byte of a blob not cached yet, through Mooring,
//	    through docker-registry, and straight from the upstream (through
//	    the same kind of counting proxy as the caches);
//	(d) an on_demand sync of the 100-tag data set (bench.DefaultDataset)
//	    against an immediate one, in process.
//
// Each cache reaches the upstream through a proxy of this program that
// counts the bytes it answers. The Mooring server is the binary users run
// (SQLite and filesystem storage in a temporary directory). Linux only
// (peak RSS from /proc).
//
//	go run ./bench/pullthrough [-runs 3] [-size 256MiB] [-clients 20]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

func main() {
	runs := flag.Int("runs", 3, "runs of each measurement")
	bigFlag := flag.String("size", "256MiB", "layer size of the first-pull image (a)")
	sharedFlag := flag.String("shared", "64MiB", "layer size the concurrent clients pull (b)")
	clients := flag.Int("clients", 20, "concurrent clients in (b)")
	ttfbFlag := flag.String("ttfb-size", "16MiB", "layer size for time to first byte (c)")
	noSync := flag.Bool("no-sync", false, "skip the sync comparison (d)")
	flag.Parse()
	log.SetFlags(0)
	big, shared, ttfbSize := mustSize(*bigFlag), mustSize(*sharedFlag), mustSize(*ttfbFlag)
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "mooring-pullthrough")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	up, err := regtest.RunDistribution(filepath.Join(tmp, "upstream"))
	if err != nil {
		log.Fatal(err)
	}
	defer up.Stop()
	toMooring, toDist, direct := newCounter(up.Host), newCounter(up.Host), newCounter(up.Host)
	dist, err := regtest.RunDistributionWith(filepath.Join(tmp, "dist-cache"), regtest.DistributionOptions{ProxyURL: "http://" + toDist.addr})
	if err != nil {
		log.Fatal(err)
	}
	defer dist.Stop()
	moor := startMooring(tmp, toMooring.addr)
	defer moor.cmd.Process.Kill()
	caches := []cache{{"mooring", moor.content, "hub/", toMooring}, {"docker-registry", dist.Host, "", toDist}}
	fmt.Printf("machine: %d CPUs; upstream, caches and clients on loopback\n", bench.NumCPU())

	// (a) first pull of an image with one large layer.
	fmt.Printf("\n(a) first pull of an image with a %s layer (manifest, config, layer)\n", *bigFlag)
	timesA := map[string][]time.Duration{}
	for run := range *runs {
		repo := fmt.Sprintf("bench/first-%d", run)
		seed := "first-" + randomHex(4)
		push(ctx, up.Host, repo, regtest.ImageOpts{Seed: seed, LayerSize: big})
		line := fmt.Sprintf("run %d:", run+1)
		for i := range caches {
			c := caches[(i+run)%2] // alternate who pulls first
			c.up.reset()
			start := time.Now()
			pullImage(c, repo)
			d := time.Since(start)
			timesA[c.name] = append(timesA[c.name], d)
			line += fmt.Sprintf("  %s %v (%s from upstream)", c.name, d.Round(time.Millisecond), mib(c.up.bytes.Load()))
		}
		fmt.Println(line)
	}
	fmt.Printf("median: mooring %v, docker-registry %v; mooring/docker-registry = %.2f\n",
		med(timesA["mooring"]), med(timesA["docker-registry"]), ratio(timesA["mooring"], timesA["docker-registry"]))

	// (b) concurrent clients of one new layer.
	fmt.Printf("\n(b) %d clients pulling the same new %s layer at once\n", *clients, *sharedFlag)
	timesB := map[string][]time.Duration{}
	var rises []float64
	for run := range *runs {
		repo := fmt.Sprintf("bench/shared-%d", run)
		seed := "shared-" + randomHex(4)
		push(ctx, up.Host, repo, regtest.ImageOpts{Seed: seed, LayerSize: shared})
		layer := regtest.LayerDescriptor(seed, 0, shared, "").Digest
		line := fmt.Sprintf("run %d:", run+1)
		for i := range caches {
			c := caches[(i+run)%2]
			getManifest(c, repo, "v1") // the manifest is not what is measured
			c.up.reset()
			var before int64
			if c.name == "mooring" {
				if err := bench.ResetPeakRSS(moor.pid); err != nil {
					log.Fatalf("reset peak RSS: %v", err)
				}
				before, _ = bench.ProcStatus(moor.pid, "VmRSS")
			}
			start := time.Now()
			var wg sync.WaitGroup
			for range *clients {
				wg.Go(func() { getBlob(c, repo, layer, nil) })
			}
			wg.Wait()
			d := time.Since(start)
			timesB[c.name] = append(timesB[c.name], d)
			line += fmt.Sprintf("  %s %v (%s from upstream, %.2fx the layer)", c.name, d.Round(time.Millisecond),
				mib(c.up.bytes.Load()), float64(c.up.bytes.Load())/float64(shared))
			if c.name == "mooring" {
				hwm, _ := bench.ProcStatus(moor.pid, "VmHWM")
				rise := float64(hwm-before) / 1024
				rises = append(rises, rise)
				line += fmt.Sprintf(" [server RSS %d MiB, peak %d MiB: +%.1f MiB]", before>>10, hwm>>10, rise)
			}
		}
		fmt.Println(line)
	}
	fmt.Printf("median: mooring %v, docker-registry %v; mooring/docker-registry = %.2f; mooring peak RSS rise %.1f MiB\n",
		med(timesB["mooring"]), med(timesB["docker-registry"]), ratio(timesB["mooring"], timesB["docker-registry"]), bench.Median(rises))

	// (c) time to first byte of a blob not cached yet.
	fmt.Printf("\n(c) time to the first byte of a %s blob not cached yet\n", *ttfbFlag)
	ttfb := map[string][]time.Duration{}
	// Straight from the upstream through a proxy like the caches', so that
	// the proxy's hop is on every side.
	straight := cache{"upstream", direct.addr, "", direct}
	for run := range max(*runs, 5) {
		repo := fmt.Sprintf("bench/ttfb-%d", run)
		seed := "ttfb-" + randomHex(4)
		push(ctx, up.Host, repo, regtest.ImageOpts{Seed: seed, LayerSize: ttfbSize, Layers: 3})
		line := fmt.Sprintf("run %d:", run+1)
		for i, c := range []cache{straight, caches[0], caches[1]} {
			getManifest(c, repo, "v1")
			// A layer of its own for each, so that none reads one another
			// warmed up.
			layer := regtest.LayerDescriptor(seed, (i+run)%3, ttfbSize, "").Digest
			var first time.Duration
			getBlob(c, repo, layer, &first)
			ttfb[c.name] = append(ttfb[c.name], first)
			line += fmt.Sprintf("  %s %v", c.name, first.Round(10*time.Microsecond))
		}
		fmt.Println(line)
	}
	mt, ut := bench.Median(ttfb["mooring"]), bench.Median(ttfb["upstream"])
	fmt.Printf("median: mooring %v, docker-registry %v, straight from the upstream %v; mooring = %.2fx the upstream's + %v (goal: <= 1.2x + 5ms)\n",
		mt.Round(10*time.Microsecond), bench.Median(ttfb["docker-registry"]).Round(10*time.Microsecond), ut.Round(10*time.Microsecond),
		float64(mt)/float64(ut), (mt - ut).Round(10*time.Microsecond))

	if !*noSync {
		syncs(ctx, tmp, up.Host, *runs)
	}
}

// cache is a registry to pull through: host, the prefix of names under
// it, and the counter of what it asks the upstream.
type cache struct {
	name, host, prefix string
	up                 *counter
}

// counter is a proxy to the upstream counting the bytes it answers.
type counter struct {
	addr     string
	bytes    atomic.Int64
	requests atomic.Int64
}

func newCounter(upstream string) *counter {
	c := &counter{}
	target, _ := url.Parse("http://" + upstream)
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(resp *http.Response) error {
		c.requests.Add(1)
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.bytes}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	c.addr = ln.Addr().String()
	go http.Serve(ln, p)
	return c
}

func (c *counter) reset() { c.bytes.Store(0); c.requests.Store(0) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

type server struct {
	cmd     *exec.Cmd
	pid     string
	content string
}

// startMooring builds and starts the server binary with a pull-through
// distribution "hub" of upstream.
func startMooring(tmp, upstream string) *server {
	bin := filepath.Join(tmp, "mooring-server")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/server").CombinedOutput(); err != nil {
		log.Fatalf("go build ./examples/server (run from the repository root): %v\n%s", err, out)
	}
	password := randomHex(12)
	api, content := bench.FreeAddr(), bench.FreeAddr()
	cmd := exec.Command(bin, "-data-dir", filepath.Join(tmp, "mooring"), "-api-addr", api, "-content-addr", content, "-workers", "0", "-log-level", "warn")
	cmd.Env = append(os.Environ(), "MOORING_ADMIN_PASSWORD="+password)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	c := &bench.Client{Base: "http://" + api, Password: password}
	c.WaitUp("/pulp/api/v3/docs/api.json")
	r := c.Post("/pulp/api/v3/remotes/docker/pull-through/", map[string]any{"name": "upstream", "url": "http://" + upstream})
	c.Post("/pulp/api/v3/docker-pull-through-distributions/", map[string]any{"name": "hub", "base_path": "hub", "remote": r["_href"]})
	return &server{cmd: cmd, pid: strconv.Itoa(cmd.Process.Pid), content: content}
}

func push(ctx context.Context, host, repo string, o regtest.ImageOpts) ocispec.Descriptor {
	d, err := regtest.PushImage(ctx, host, repo, "v1", o)
	if err != nil {
		log.Fatal(err)
	}
	return d
}

// getManifest fetches a manifest as a client does and returns it.
func getManifest(c cache, repo, ref string) ocispec.Manifest {
	req, _ := http.NewRequest("GET", "http://"+c.host+"/v2/"+c.prefix+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", strings.Join(content.ManifestMediaTypes, ","))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("%s: manifest %s:%s: %s %s", c.name, repo, ref, resp.Status, raw)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		log.Fatal(err)
	}
	return m
}

// getBlob reads a blob whole, verifying it; first, when not nil, gets
// the time to its first byte.
func getBlob(c cache, repo string, d digest.Digest, first *time.Duration) {
	start := time.Now()
	resp, err := http.Get("http://" + c.host + "/v2/" + c.prefix + repo + "/blobs/" + d.String())
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		log.Fatalf("%s: blob %s: %s %s", c.name, d, resp.Status, b)
	}
	v := d.Verifier()
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		log.Fatalf("%s: blob %s: %v", c.name, d, err)
	}
	if first != nil {
		*first = time.Since(start)
	}
	v.Write(one)
	if _, err := io.Copy(v, resp.Body); err != nil || !v.Verified() {
		log.Fatalf("%s: blob %s: verified %v, %v", c.name, d, v.Verified(), err)
	}
}

// pullImage pulls manifest, config and layers, as a client does.
func pullImage(c cache, repo string) {
	m := getManifest(c, repo, "v1")
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		getBlob(c, repo, b.Digest, nil)
	}
}

// syncs times an immediate and an on_demand sync of the data set into a
// fresh Mooring each (SQLite, filesystem storage), in process.
func syncs(ctx context.Context, tmp, upstream string, runs int) {
	ds := bench.DefaultDataset
	n, err := bench.Load(ctx, upstream, "bench/app", ds)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n(d) first sync of %d tags (%d manifest lists; every image shares a %d MiB base layer and adds %d of %d KiB)\n",
		n, ds.Lists, ds.BaseSize>>20, ds.Unique, ds.UniqueSize>>10)
	times := map[remote.Policy][]time.Duration{}
	for run := range runs {
		line := fmt.Sprintf("run %d:", run+1)
		for _, p := range []remote.Policy{remote.PolicyImmediate, remote.PolicyOnDemand} {
			dir := filepath.Join(tmp, fmt.Sprintf("sync-%s-%d", p, run))
			m, err := mooring.Open(ctx, filepath.Join(dir, "mooring.db"), filepath.Join(dir, "blobs"), mooring.Options{})
			if err != nil {
				log.Fatal(err)
			}
			repo, err := m.Repositories.CreateRepository(ctx, "mirror", "")
			if err != nil {
				log.Fatal(err)
			}
			r := remote.New("bench", "http://"+upstream, "bench/app")
			r.Policy = p
			if err := m.Remotes.Create(ctx, r); err != nil {
				log.Fatal(err)
			}
			start := time.Now()
			res, err := m.Sync(ctx, r, repo, remote.SyncOptions{})
			if err != nil {
				log.Fatal(err)
			}
			d := time.Since(start)
			times[p] = append(times[p], d)
			line += fmt.Sprintf("  %s %v (%d blobs, %s downloaded)", p, d.Round(time.Millisecond), res.BlobsDownloaded, mib(res.BytesDownloaded))
			m.Close()
		}
		fmt.Println(line)
	}
	fmt.Printf("median: immediate %v, on_demand %v; on_demand/immediate = %.2f\n",
		med(times[remote.PolicyImmediate]), med(times[remote.PolicyOnDemand]), ratio(times[remote.PolicyOnDemand], times[remote.PolicyImmediate]))
}

func med(ds []time.Duration) time.Duration { return bench.Median(ds).Round(time.Millisecond) }

func ratio(a, b []time.Duration) float64 {
	return bench.Median(a).Seconds() / bench.Median(b).Seconds()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func mustSize(s string) int64 {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err == nil && v > 0 {
				return v * u.mult
			}
		}
	}
	log.Fatalf("size %q: want a number with KiB, MiB or GiB", s)
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
