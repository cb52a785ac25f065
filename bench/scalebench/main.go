// Command scalebench measures Mooring scaled out on PostgreSQL and S3
// (versitygw), with the server binary bench/scale.sh builds:
//
//  1. Sync time of 10 repositories with 1, 2 and 3 worker-only processes
//     (-api-addr "" -content-addr "" -workers 2), and, as a control, one
//     process with as many workers as three processes have. An API-only
//     process (-workers 0) takes the REST calls. Each configuration gets a
//     fresh PostgreSQL schema and a fresh key prefix in the bucket, so
//     every blob is uploaded again.
//  2. Blob GET throughput from S3 through a content-only process that
//     streams blobs, through one that redirects to presigned URLs (the
//     client follows), and straight from versitygw with a presigned URL, the
//     ceiling of both. A Go client with -c connections GETs the same blob
//     for -d; a small blob shows what the extra round trip of a redirect
//     costs.
//
// Everything runs on one machine: the figures show the overhead of
// spreading work over processes there, not what more machines would give.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
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
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/bench"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/storage/s3"
	"github.com/mooring-dev/mooring/storage/s3/s3test"
)

const password = "bench-password"

var (
	bin        = flag.String("mooring", "", "path of the Mooring server binary (examples/server)")
	dsn        = flag.String("dsn", envOr("MOORING_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL DSN; each run uses a fresh schema in it")
	repos      = flag.Int("repos", 10, "repositories to sync")
	tags       = flag.Int("tags", 20, "tags per repository")
	layerKiB   = flag.Int("layer-kib", 1024, "size of each image's two layers, KiB (each repository also has a 2 MiB base layer)")
	procsList  = flag.String("procs", "1,2,3", "numbers of worker processes to time")
	perProc    = flag.Int("workers", 2, "task workers per worker process")
	runs       = flag.Int("runs", 1, "timed syncs per configuration (median printed)")
	duration   = flag.Duration("d", 10*time.Second, "duration of each blob GET run")
	conns      = flag.Int("c", 8, "concurrent blob GETs")
	bigMiB     = flag.Int("blob-mib", 64, "size of the large blob, MiB")
	smallKiB   = flag.Int("small-kib", 32, "size of the small blob, KiB")
	keepOutput = flag.Bool("v", false, "show the servers' logs")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *bin == "" {
		log.Fatal("-mooring is required")
	}
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "mooring-scalebench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	reg, err := regtest.RunDistribution(filepath.Join(tmp, "registry"))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Stop()
	vgw, cfg := startVersity(tmp)
	defer vgw()

	blobs, mib := pushRepos(ctx, reg.Host)
	fmt.Printf("%d CPUs; PostgreSQL %s; versitygw at %s; upstream docker-registry at %s\n", bench.NumCPU(), redact(*dsn), cfg.Endpoint, reg.Host)
	fmt.Printf("sync of %d repositories (%d tags each; %d blobs, %.0f MiB in all) from docker-registry into S3:\n", *repos, *tags, blobs, mib)

	run := 0
	type config struct{ procs, workers int }
	var configs []config
	for _, s := range strings.Split(*procsList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			log.Fatalf("-procs: %q", s)
		}
		configs = append(configs, config{n, *perProc})
	}
	if last := configs[len(configs)-1]; last.procs > 1 {
		configs = append(configs, config{1, last.procs * last.workers})
	}
	var c *cluster
	for _, cf := range configs {
		var times []time.Duration
		var busy time.Duration
		var cpu map[string]time.Duration
		for range *runs {
			run++
			if c != nil {
				c.stop()
			}
			c = newCluster(ctx, tmp, cfg, run)
			for i := range cf.procs {
				c.startWorkers(fmt.Sprintf("worker%d", i), cf.workers)
			}
			before := cpuTimes()
			elapsed, sum := c.syncAll(reg.Host)
			cpu = since(before, cpuTimes())
			times = append(times, elapsed)
			busy = sum
		}
		med := bench.Median(times)
		fmt.Printf("  %d worker process(es) x %d workers: %8s   (%.1f repositories/s; task run time summed %s)\n",
			cf.procs, cf.workers, med.Round(time.Millisecond), float64(*repos)/med.Seconds(), busy.Round(time.Millisecond))
		fmt.Printf("      CPU during the last run: %s\n", cpuNote(cpu))
	}

	// Blob GETs, from the last cluster's bucket prefix and schema.
	big := c.addBlobRepo(ctx, reg.Host, "big", int64(*bigMiB)<<20)
	small := c.addBlobRepo(ctx, reg.Host, "small", int64(*smallKiB)<<10)
	stream := c.startContent("content-stream", false)
	redirect := c.startContent("content-redirect", true)
	direct, err := s3Direct(ctx, cfg, c.prefix)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("blob GETs, %d connections for %s each (Go client, follows redirects):\n", *conns, *duration)
	for _, b := range []struct {
		name, repo string
		d          digest.Digest
		size       int64
	}{{fmt.Sprintf("%d MiB", *bigMiB), "big", big, int64(*bigMiB) << 20}, {fmt.Sprintf("%d KiB", *smallKiB), "small", small, int64(*smallKiB) << 10}} {
		repo := b.repo
		for _, target := range []struct {
			name string
			url  func() string
		}{
			{"streamed through Mooring", func() string { return "http://" + stream + "/v2/" + repo + "/blobs/" + b.d.String() }},
			{"redirected by Mooring", func() string { return "http://" + redirect + "/v2/" + repo + "/blobs/" + b.d.String() }},
			{"straight from versitygw (presigned)", func() string { return direct(b.d) }},
		} {
			n, bytes, errs := load(ctx, target.url, b.size)
			fmt.Printf("  %-7s %-36s %8.1f req/s %8.1f MiB/s  %s\n", b.name, target.name, float64(n)/duration.Seconds(),
				float64(bytes)/(1<<20)/duration.Seconds(), errNote(errs))
		}
	}
	c.stop()
}

// pushRepos pushes the repositories r0..r(N-1): each has a base layer of
// its own and -tags images of two -layer-kib layers on it. It returns the
// number of distinct blobs and their MiB.
func pushRepos(ctx context.Context, host string) (int, float64) {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	layer := int64(*layerKiB) << 10
	for r := range *repos {
		name := fmt.Sprintf("r%d", r)
		base := &regtest.ImageOpts{Seed: name + "-base", Layers: 1, LayerSize: 2 << 20}
		if _, err := regtest.PushImage(ctx, host, name, "base", *base); err != nil {
			log.Fatal(err)
		}
		for i := range *tags {
			g.Go(func() error {
				_, err := regtest.PushImage(ctx, host, name, fmt.Sprintf("t%d", i), regtest.ImageOpts{Seed: fmt.Sprintf("%s-%d", name, i), Layers: 2, LayerSize: layer, Base: base})
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		log.Fatal(err)
	}
	// Per repository: the base image (layer + config), and per tag two
	// layers and a config.
	blobs := *repos * (2 + *tags*3)
	mib := float64(*repos) * (2 + float64(*tags)*2*float64(layer)/(1<<20))
	return blobs, mib
}

// cluster is one configuration: a schema, a bucket prefix, an API-only
// process and any number of worker-only and content-only processes.
type cluster struct {
	dir, dsn, prefix, storage string
	env                       []string
	admin                     func()
	api                       *bench.Client
	procs                     []*exec.Cmd
	logs                      []*bytes.Buffer
	repoHrefs                 []string
}

func newCluster(ctx context.Context, tmp string, cfg s3.Config, run int) *cluster {
	c := &cluster{dir: filepath.Join(tmp, fmt.Sprintf("run%d", run)), prefix: fmt.Sprintf("run%d", run)}
	schema := fmt.Sprintf("scalebench_%d_%d", os.Getpid(), run)
	admin, err := mooringdb.Open(ctx, *dsn)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		log.Fatal(err)
	}
	c.admin = func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	}
	u, err := url.Parse(*dsn)
	if err != nil {
		log.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	c.dsn = u.String()
	c.storage = fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&pathstyle=true", cfg.Bucket, c.prefix, url.QueryEscape(cfg.Endpoint), cfg.Region)
	c.env = []string{"MOORING_ADMIN_PASSWORD=" + password, "MOORING_LOG_LEVEL=warn",
		"AWS_ACCESS_KEY_ID=" + cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + cfg.SecretKey}
	apiAddr := bench.FreeAddr()
	c.start("api", "-api-addr", apiAddr, "-content-addr", "", "-workers", "0")
	c.api = &bench.Client{Base: "http://" + apiAddr, Password: password}
	c.api.WaitUp("/pulp/api/v3/docs/api.json")
	return c
}

func (c *cluster) start(name string, args ...string) *exec.Cmd {
	args = append(args, "-database", c.dsn, "-storage", c.storage, "-data-dir", filepath.Join(c.dir, name))
	cmd := exec.Command(*bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if *keepOutput {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	c.procs = append(c.procs, cmd)
	c.logs = append(c.logs, &buf)
	return cmd
}

// startWorkers starts a worker-only process and waits until its workers
// have registered.
func (c *cluster) startWorkers(name string, workers int) {
	before := c.workerCount()
	c.start(name, "-api-addr", "", "-content-addr", "", "-workers", strconv.Itoa(workers))
	for deadline := time.Now().Add(30 * time.Second); c.workerCount() == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.fail("worker process %s did not register", name)
		}
	}
}

func (c *cluster) workerCount() int {
	db, err := mooringdb.Open(context.Background(), c.dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM workers").Scan(&n); err != nil {
		return 0 // not migrated yet
	}
	return n
}

// startContent starts a content-only process and returns its address.
func (c *cluster) startContent(name string, redirect bool) string {
	addr := bench.FreeAddr()
	c.start(name, "-api-addr", "", "-content-addr", addr, "-workers", "0", "-storage-redirect="+strconv.FormatBool(redirect))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			c.fail("%s did not start", name)
		}
	}
}

func (c *cluster) fail(format string, args ...any) {
	for i, b := range c.logs {
		fmt.Fprintf(os.Stderr, "--- process %d:\n%s\n", i, b.String())
	}
	c.stop()
	log.Fatalf(format, args...)
}

func (c *cluster) stop() {
	for _, p := range c.procs {
		p.Process.Signal(os.Interrupt)
	}
	for _, p := range c.procs {
		p.Wait()
	}
	c.procs = nil
	c.admin()
}

// syncAll creates a repository and a remote per upstream repository, starts
// every sync at once and waits for them. It returns the time from the
// first task's creation to the last one's end, by the tasks' own
// timestamps, and the sum of the tasks' run times.
func (c *cluster) syncAll(upstream string) (time.Duration, time.Duration) {
	var hrefs []string
	c.repoHrefs = nil
	for i := range *repos {
		name := fmt.Sprintf("r%d", i)
		repo := c.api.Post("/pulp/api/v3/repositories/", map[string]any{"name": name})["_href"].(string)
		remote := c.api.Post("/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": name, "url": "http://" + upstream, "upstream_name": name})["_href"].(string)
		c.repoHrefs = append(c.repoHrefs, repo)
		hrefs = append(hrefs, remote+"sync/")
	}
	var tasks []string
	for i, h := range hrefs {
		tasks = append(tasks, c.api.Post(h, map[string]any{"repository": c.repoHrefs[i]})["task"].(string))
	}
	var first, last time.Time
	var busy time.Duration
	for _, href := range tasks {
		t := c.waitTask(href)
		created, started, finished := ts(t["_created"]), ts(t["started_at"]), ts(t["finished_at"])
		if first.IsZero() || created.Before(first) {
			first = created
		}
		if finished.After(last) {
			last = finished
		}
		busy += finished.Sub(started)
	}
	return last.Sub(first), busy
}

func (c *cluster) waitTask(href string) map[string]any {
	for {
		t := c.api.Get(href)
		switch t["state"] {
		case "completed":
			return t
		case "waiting", "running":
			time.Sleep(50 * time.Millisecond)
		default:
			c.fail("task %s %v: %v", href, t["state"], t["error"])
		}
	}
}

// addBlobRepo pushes an image with one layer of size bytes as upstream
// repository name, syncs it with the cluster's workers and serves it at
// base path name. It returns the layer's
// digest.
func (c *cluster) addBlobRepo(ctx context.Context, upstream, name string, size int64) digest.Digest {
	desc := regtest.LayerDescriptor(name, 0, size, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if _, err := regtest.PushImage(ctx, upstream, name, "latest", regtest.ImageOpts{Seed: name, Layers: 1, LayerSize: size}); err != nil {
		log.Fatal(err)
	}
	repo := c.api.Post("/pulp/api/v3/repositories/", map[string]any{"name": name})["_href"].(string)
	remote := c.api.Post("/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": name, "url": "http://" + upstream, "upstream_name": name})["_href"].(string)
	c.waitTask(c.api.Post(remote+"sync/", map[string]any{"repository": repo})["task"].(string))
	c.api.Post("/pulp/api/v3/docker-distributions/", map[string]any{"name": name, "base_path": name, "repository": repo})
	return desc.Digest
}

// load GETs url() from -c goroutines for -d, following redirects, and
// returns the completed GETs, the bytes read and the errors.
func load(ctx context.Context, url func() string, size int64) (n, total int64, errs int64) {
	tr := &http.Transport{MaxIdleConnsPerHost: *conns * 2, DisableCompression: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var wg sync.WaitGroup
	var nn, bytesRead, bad atomic.Int64
	buf := sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	for range *conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", url(), nil)
				resp, err := cl.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						bad.Add(1)
					}
					continue
				}
				b := buf.Get().(*[]byte)
				m, err := io.CopyBuffer(io.Discard, resp.Body, *b)
				buf.Put(b)
				resp.Body.Close()
				bytesRead.Add(m)
				switch {
				case err == nil && resp.StatusCode == http.StatusOK && m == size:
					nn.Add(1)
				case ctx.Err() == nil:
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return nn.Load(), bytesRead.Load(), bad.Load()
}

func errNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("(%d errors)", n)
}

// s3Direct returns a function giving a presigned URL for a blob under
// prefix, as the redirecting server would.
func s3Direct(ctx context.Context, cfg s3.Config, prefix string) (func(digest.Digest) string, error) {
	cfg.Prefix = prefix
	d, err := s3.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cache := map[digest.Digest]string{}
	var mu sync.Mutex
	return func(dg digest.Digest) string {
		mu.Lock()
		defer mu.Unlock()
		if u, ok := cache[dg]; ok {
			return u
		}
		u, err := d.RedirectURL(ctx, dg, time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		cache[dg] = u
		return u
	}, nil
}

// startVersity runs versitygw with s3test, with its data under tmp, and
// creates the bucket.
func startVersity(tmp string) (stop func(), cfg s3.Config) {
	vbin, err := s3test.Find()
	if err != nil {
		log.Fatalf("%v; install it with %s", err, s3test.InstallCommand)
	}
	cfg, stop, err = s3test.Run(vbin, tmp)
	if err != nil {
		log.Fatal(err)
	}
	return stop, cfg
}

// cpuTimes returns the CPU time used so far by this program's child
// processes by command name (mooring, versitygw, docker-registry), by
// every PostgreSQL process of the machine ("postgres"), and by the whole
// machine ("all", from /proc/stat).
func cpuTimes() map[string]time.Duration {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	out := map[string]time.Duration{}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
		for i, v := range f[1:] {
			if i > 6 || i == 3 || i == 4 { // idle, iowait, steal, guest (in user already)
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			out["all"] += time.Duration(n) * tick
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := strconv.Itoa(os.Getpid())
	for _, p := range dirs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		name := s[open+1 : end]
		f := strings.Fields(s[end+1:]) // f[0] is the state, f[1] the ppid
		if len(f) < 13 || (f[1] != me && name != "postgres") {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[name] += time.Duration(ut+st) * tick
	}
	return out
}

func since(before, after map[string]time.Duration) map[string]time.Duration {
	d := map[string]time.Duration{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// cpuNote prints the CPU seconds of each role and the rest of the machine.
func cpuNote(cpu map[string]time.Duration) string {
	rest := cpu["all"]
	var parts []string
	for _, k := range []string{"mooring", "versitygw", "docker-registry", "postgres"} {
		parts = append(parts, fmt.Sprintf("%s %.1fs", k, cpu[k].Seconds()))
		rest -= cpu[k]
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(", the rest (this program, the kernel, …) %.1fs; machine %.1fs", rest.Seconds(), cpu["all"].Seconds())
}

func ts(v any) time.Time {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		log.Fatalf("timestamp %q: %v", s, err)
	}
	return t
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
