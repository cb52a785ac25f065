// Command servebench compares how fast Mooring's registry serves pulls with
// CNCF distribution (Debian's docker-registry) on the same machine and the
// same content: an image whose one layer is 64 MiB.
//
// It starts docker-registry, pushes the image to it, starts the Mooring
// server binary (built by bench/serve.sh) with SQLite and filesystem
// storage in a temporary directory, syncs the image into it through the
// REST API and serves it from a distribution. Then wrk, with 32
// connections, GETs the manifest (by tag) and the layer from each server,
// and the figures and ratios are printed.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/internal/regtest"
)

func main() {
	bin := flag.String("mooring", "", "path of the Mooring server binary (examples/server)")
	duration := flag.Duration("d", 10*time.Second, "duration of each wrk run")
	conns := flag.Int("c", 32, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
	layerMiB := flag.Int("layer-mib", 64, "layer size in MiB")
	metricsRuns := flag.Int("metrics-runs", 3, "manifest GET runs with metrics on and off, in turns, to measure what metrics cost (0: none)")
	flag.Parse()
	log.SetFlags(0)
	if *bin == "" {
		log.Fatal("-mooring is required")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		log.Fatal("wrk not installed (apt-get install wrk)")
	}
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "mooring-servebench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	reg, err := regtest.RunDistribution(filepath.Join(tmp, "registry"))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Stop()
	desc, err := regtest.PushImage(ctx, reg.Host, "bench/app", "latest", regtest.ImageOpts{Seed: "serve", Layers: 1, LayerSize: int64(*layerMiB) << 20})
	if err != nil {
		log.Fatal(err)
	}
	layer := layerDigest(ctx, reg.Host, desc)

	apiAddr, contentAddr := bench.FreeAddr(), bench.FreeAddr()
	const password = "bench-password"
	srv := exec.Command(*bin, "-data-dir", filepath.Join(tmp, "mooring"), "-api-addr", apiAddr, "-content-addr", contentAddr)
	srv.Env = append(os.Environ(), "MOORING_ADMIN_PASSWORD="+password, "MOORING_LOG_LEVEL=warn")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	api := &bench.Client{Base: "http://" + apiAddr, Password: password}
	api.WaitUp("/pulp/api/v3/")
	repo := api.Post("/pulp/api/v3/repositories/", map[string]any{"name": "bench"})["_href"].(string)
	remote := api.Post("/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "bench", "url": "http://" + reg.Host, "upstream_name": "bench/app"})["_href"].(string)
	task := api.Post(remote+"sync/", map[string]any{"repository": repo})["task"].(string)
	for {
		t := api.Get(task)
		if t["state"] == "completed" {
			break
		}
		if t["state"] != "waiting" && t["state"] != "running" {
			log.Fatalf("sync %v: %v", t["state"], t["error"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	api.Post("/pulp/api/v3/docker-distributions/", map[string]any{"name": "bench", "base_path": "bench/app", "repository": repo})

	fmt.Printf("wrk -t%d -c%d -d%s on one machine (%d CPUs); image: one layer of %d MiB\n", *threads, *conns, *duration, bench.NumCPU(), *layerMiB)
	type result struct{ rps, mbps float64 }
	run := func(name, url string, accept string, headers ...string) result {
		// A 64 MiB GET shared 32 ways takes seconds: past wrk's default 2s
		// timeout it would count as an error instead of a transfer.
		args := []string{fmt.Sprintf("-t%d", *threads), fmt.Sprintf("-c%d", *conns), "-d" + duration.String(), "--latency", "--timeout", "60s"}
		if accept != "" {
			args = append(args, "-H", "Accept: "+accept)
		}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
		if err != nil {
			log.Fatalf("wrk %s: %v\n%s", url, err, out)
		}
		r := result{rps: parse(out, `Requests/sec:\s+([0-9.]+)`, 1), mbps: parse(out, `Transfer/sec:\s+([0-9.]+)([KMG]?B)`, 0)}
		if bad := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindSubmatch(out); bad != nil {
			log.Fatalf("%s: %s non-2xx responses", name, bad[1])
		}
		if errs := regexp.MustCompile(`Socket errors: .*`).Find(out); errs != nil {
			fmt.Printf("  %s: %s\n", name, errs)
		}
		p99 := regexp.MustCompile(`99%\s+(\S+)`).FindSubmatch(out)
		lat := "?"
		if p99 != nil {
			lat = string(p99[1])
		}
		fmt.Printf("  %-44s %10.0f req/s %10.1f MB/s   p99 %s\n", name, r.rps, r.mbps, lat)
		return r
	}
	const accept = "application/vnd.docker.distribution.manifest.v2+json"
	regManifest := run("docker-registry manifest GET", "http://"+reg.Host+"/v2/bench/app/manifests/latest", accept)
	mooManifest := run("Mooring manifest GET", "http://"+contentAddr+"/v2/bench/app/manifests/latest", accept)
	token := pullToken(contentAddr, password)
	mooBearer := run("Mooring manifest GET, Bearer token", "http://"+contentAddr+"/v2/bench/app/manifests/latest", accept, "Authorization: Bearer "+token)
	mooBasic := run("Mooring manifest GET, Basic credentials", "http://"+contentAddr+"/v2/bench/app/manifests/latest", accept,
		"Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+password)))
	regBlob := run(fmt.Sprintf("docker-registry %d MiB blob GET", *layerMiB), "http://"+reg.Host+"/v2/bench/app/blobs/"+layer, "")
	mooBlob := run(fmt.Sprintf("Mooring %d MiB blob GET", *layerMiB), "http://"+contentAddr+"/v2/bench/app/blobs/"+layer, "")
	fmt.Printf("manifest GET: Mooring/docker-registry = %.2fx requests/s (target >= 2x)\n", mooManifest.rps/regManifest.rps)
	fmt.Printf("blob GET:     Mooring/docker-registry = %.2fx throughput (target >= 1.0x)\n", mooBlob.mbps/regBlob.mbps)
	fmt.Printf("manifest GET: Bearer token/anonymous = %.2fx, Basic/anonymous = %.2fx requests/s (target >= 0.9x)\n", mooBearer.rps/mooManifest.rps, mooBasic.rps/mooManifest.rps)
	if *metricsRuns > 0 {
		metricsCost(*bin, tmp, contentAddr, *metricsRuns, func(name, url string) float64 { return run(name, url, accept).rps })
	}
}

// metricsCost measures what metrics cost the manifest GET rate: a second
// server process on the same database and storage, started with
// -metrics=false, serves the same manifest, and the two are measured in
// turns, runs times each.
func metricsCost(bin, tmp, withMetrics string, runs int, rate func(name, url string) float64) {
	addr := bench.FreeAddr()
	srv := exec.Command(bin, "-data-dir", filepath.Join(tmp, "mooring"), "-api-addr", "", "-content-addr", addr, "-workers", "0", "-metrics=false")
	srv.Env = append(os.Environ(), "MOORING_LOG_LEVEL=warn")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("the server without metrics did not start")
		}
	}
	var on, off []float64
	for i := range runs {
		on = append(on, rate(fmt.Sprintf("Mooring manifest GET, metrics on (%d)", i+1), "http://"+withMetrics+"/v2/bench/app/manifests/latest"))
		off = append(off, rate(fmt.Sprintf("Mooring manifest GET, metrics off (%d)", i+1), "http://"+addr+"/v2/bench/app/manifests/latest"))
	}
	mOn, mOff := median(on), median(off)
	fmt.Printf("manifest GET: metrics on %.0f req/s, off %.0f req/s (medians of %d); metrics cost %.1f%% (target < 5%%)\n", mOn, mOff, runs, 100*(1-mOn/mOff))
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// parse reads a wrk figure; with unit 0 it is a transfer rate, converted
// to wrk's MB (which are MiB: wrk counts in powers of 1024).
func parse(out []byte, re string, unit int) float64 {
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		log.Fatalf("no %s in wrk output:\n%s", re, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	if unit == 0 {
		switch string(m[2]) {
		case "B":
			v /= 1e6
		case "KB":
			v /= 1e3
		case "GB":
			v *= 1e3
		}
	}
	return v
}

func layerDigest(ctx context.Context, host string, desc ocispec.Descriptor) string {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+host+"/v2/bench/app/manifests/"+desc.Digest.String(), nil)
	req.Header.Set("Accept", desc.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var m ocispec.Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Layers) == 0 {
		log.Fatalf("read manifest: %v", err)
	}
	return m.Layers[0].Digest.String()
}

// pullToken asks Mooring's token endpoint for a pull token of bench/app,
// as admin.
func pullToken(addr, password string) string {
	req, _ := http.NewRequest("GET", "http://"+addr+"/token/?service=mooring&scope=repository:bench/app:pull", nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
		log.Fatalf("token endpoint: %s %v", resp.Status, err)
	}
	return body.Token
}
