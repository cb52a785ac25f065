package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
	"github.com/mooring-dev/mooring/storage/s3/s3test"
)

// TestScaleOut runs three server processes on one PostgreSQL database and
// one S3 bucket (versitygw), each serving the REST API and the registry and
// running two task workers; one of them redirects blob GETs to presigned
// S3 URLs. Through the REST API of whichever process, it starts 10 syncs
// into 10 repositories and 5 syncs from 5 remotes into one repository, all
// at once. One sync is held mid-download by a proxy in front of the
// upstream while its process is killed with SIGKILL; a survivor fails that
// task once the dead process's heartbeat is older than -task-dead-after,
// the repository's other syncs, which waited on its lock, then run, and a
// new sync completes.
//
// It then checks what a user would: every task ended once (completed, or
// failed for the dead worker), each sync hit the upstream's tag list once
// (twice for the one run again), every repository's versions are 0..N with
// each version created by exactly one task, and every image pulls through
// every process (the killed one restarted) with upstream's digests, by
// HTTP and, through the redirecting process, by podman.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	dsn, db := postgresSchema(t)
	s3cfg := s3test.Start(t)
	upstream := regtest.StartDistribution(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Upstream: r0..r9 tagged latest (r0 also "real", an image podman can
	// unpack), s0..s4 each tagged with its own name.
	want := map[string]map[string]digest.Digest{} // distribution base path -> tag -> digest
	want["s"] = map[string]digest.Digest{}
	for i := range 10 {
		name := fmt.Sprintf("r%d", i)
		d, err := regtest.PushImage(ctx, upstream, name, "latest", regtest.ImageOpts{Seed: name, Layers: 2, LayerSize: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		want[name] = map[string]digest.Digest{"latest": d.Digest}
	}
	realImg, err := pushRealImage(ctx, t, upstream, "r0")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := regtest.Repository(upstream, "r0"); err != nil {
		t.Fatal(err)
	} else if err := r.Tag(ctx, realImg, "real"); err != nil {
		t.Fatal(err)
	}
	want["r0"]["real"] = realImg.Digest
	for i := range 5 {
		name := fmt.Sprintf("s%d", i)
		d, err := regtest.PushImage(ctx, upstream, name, name, regtest.ImageOpts{Seed: name, Layers: 2, LayerSize: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		want["s"][name] = d.Digest
	}
	proxy := newGateProxy(t, upstream, "s0")

	// Three processes, each with the API, the registry and two workers.
	bin := buildServer(t)
	password := randomHex(12)
	storageURL := fmt.Sprintf("s3://%s/scaleout?endpoint=%s&region=%s&pathstyle=true",
		s3cfg.Bucket, url.QueryEscape(s3cfg.Endpoint), s3cfg.Region)
	env := []string{"MOORING_ADMIN_PASSWORD=" + password,
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey}
	var procs []*serverProc
	for i := range 3 {
		p := &serverProc{name: fmt.Sprintf("p%d", i), bin: bin, env: env,
			api: freeAddr(t), content: freeAddr(t), redirect: i == 1}
		p.args = []string{"-api-addr", p.api, "-content-addr", p.content, "-database", dsn, "-storage", storageURL,
			"-workers", "2", "-task-heartbeat", "500ms", "-task-dead-after", "4s", "-data-dir", t.TempDir()}
		if p.redirect {
			p.args = append(p.args, "-storage-redirect")
		}
		p.start(t)
		procs = append(procs, p)
	}
	// REST calls go round-robin to every process.
	next := 0
	api := func() *restClient {
		next++
		return &restClient{t: t, base: "http://" + procs[next%len(procs)].api, password: password}
	}

	type syncJob struct{ remote, repo, task string }
	repoHrefs := map[string]string{}
	for base := range want {
		repoHrefs[base] = api().post("/pulp/api/v3/repositories/", map[string]any{"name": "repo-" + base})["_href"].(string)
		api().post("/pulp/api/v3/docker-distributions/", map[string]any{"name": base, "base_path": base, "repository": repoHrefs[base]})
	}
	remoteHrefs := map[string]string{}
	for _, up := range []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "s0", "s1", "s2", "s3", "s4"} {
		remoteHrefs[up] = api().post("/pulp/api/v3/remotes/docker/docker/", map[string]any{
			"name": up, "url": "http://" + proxy.addr, "upstream_name": up})["_href"].(string)
	}
	startSync := func(c *restClient, up string) syncJob {
		repo := repoHrefs[up[:1]]
		if up[0] == 'r' {
			repo = repoHrefs[up]
		}
		href := c.post(remoteHrefs[up]+"sync/", map[string]any{"repository": repo})["task"].(string)
		return syncJob{up, repo, href}
	}

	// s0 first, so that it takes repository s's lock; then the other 14 at
	// once, each through a different process.
	jobs := []syncJob{startSync(api(), "s0")}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, up := range []string{"r0", "s1", "r1", "r2", "s2", "r3", "r4", "s3", "r5", "r6", "s4", "r7", "r8", "r9"} {
		c := api()
		wg.Go(func() {
			j := startSync(c, up)
			mu.Lock()
			jobs = append(jobs, j)
			mu.Unlock()
		})
	}
	wg.Wait()

	// s0's sync is now stuck downloading a blob. Wait until the r syncs are
	// done, so that the process running s0 runs nothing else, and kill it.
	select {
	case <-proxy.held:
	case <-ctx.Done():
		t.Fatal("s0's sync never asked upstream for a blob")
	}
	s0Task := jobs[0].task
	survivor := &restClient{t: t, base: "http://" + procs[0].api, password: password}
	for _, j := range jobs {
		if j.remote[0] == 'r' {
			if tk := survivor.waitTask(ctx, j.task); tk.State != "completed" {
				t.Fatalf("sync of %s: %s %v", j.remote, tk.State, tk.Error)
			}
		}
	}
	var pid int
	if err := db.QueryRowContext(ctx, "SELECT w.pid FROM tasks AS t JOIN workers AS w ON w.id = t.worker_id WHERE t.id = ?",
		taskID(s0Task)).Scan(&pid); err != nil {
		t.Fatalf("worker of s0's task: %v", err)
	}
	victim := -1
	for i, p := range procs {
		if p.cmd.Process.Pid == pid {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("s0's task runs in pid %d, none of the servers", pid)
	}
	t.Logf("s0's sync runs in %s (pid %d); killing it", procs[victim].name, pid)
	// Not reaped until its task is failed: the zombie keeps its pid alive,
	// so the survivors have only the heartbeat to go by, as they would if
	// the process had been on another machine.
	procs[victim].cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	proxy.open()
	if victim == 0 {
		survivor.base = "http://" + procs[1].api
	}
	failed := survivor.waitTask(ctx, s0Task)
	procs[victim].reap()
	t.Logf("%.1fs after the kill, s0's sync is %s: %+v", time.Since(killed).Seconds(), failed.State, failed.Error)
	if failed.State != "failed" || failed.Error == nil || !strings.Contains(failed.Error.Description, "no heartbeat from process "+fmt.Sprint(pid)) {
		t.Errorf("s0's sync after its process was killed: %s %+v, want failed for the missing heartbeat", failed.State, failed.Error)
	}
	// The rest of repository s's syncs waited on its lock; they run now.
	for _, j := range jobs[1:] {
		if tk := survivor.waitTask(ctx, j.task); tk.State != "completed" {
			t.Errorf("sync of %s: %s %+v", j.remote, tk.State, tk.Error)
		}
	}
	// The next sync of s0 completes.
	again := startSync(survivor, "s0")
	if tk := survivor.waitTask(ctx, again.task); tk.State != "completed" {
		t.Fatalf("s0's sync run again: %s %+v", tk.State, tk.Error)
	}
	jobs = append(jobs, again)
	// The killed process comes back.
	procs[victim].start(t)

	// Every task ended once: completed with one new version, or (the
	// killed one) failed with none; every version of every repository was
	// created by exactly one task, and they are numbered 0..N.
	createdBy := map[string][]string{}
	var intoS [][2]time.Time // when each sync into repository s ran
	for _, j := range jobs {
		tk := survivor.task(j.task)
		if j.repo == repoHrefs["s"] && j.task != s0Task {
			start, err1 := time.Parse(time.RFC3339Nano, tk.StartedAt)
			end, err2 := time.Parse(time.RFC3339Nano, tk.FinishedAt)
			if err1 != nil || err2 != nil {
				t.Errorf("sync of %s ran from %q to %q", j.remote, tk.StartedAt, tk.FinishedAt)
			}
			intoS = append(intoS, [2]time.Time{start, end})
		}
		switch {
		case j.task == s0Task:
			if len(tk.CreatedResources) != 0 {
				t.Errorf("the killed sync created %v", tk.CreatedResources)
			}
		case tk.State != "completed" || len(tk.CreatedResources) != 1:
			t.Errorf("sync of %s: %s, created %v", j.remote, tk.State, tk.CreatedResources)
		default:
			createdBy[tk.CreatedResources[0]] = append(createdBy[tk.CreatedResources[0]], j.remote)
		}
	}
	// The repository's lock held across processes: its syncs ran one at a
	// time.
	slices.SortFunc(intoS, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	for i := 1; i < len(intoS); i++ {
		if intoS[i][0].Before(intoS[i-1][1]) {
			t.Errorf("two syncs into repository s overlapped: %v and %v", intoS[i-1], intoS[i])
		}
	}
	for base, href := range repoHrefs {
		var numbers []int
		for _, v := range survivor.get(href + "versions/?limit=100")["results"].([]any) {
			v := v.(map[string]any)
			n := int(v["number"].(float64))
			numbers = append(numbers, n)
			if by := createdBy[v["_href"].(string)]; n > 0 && len(by) != 1 {
				t.Errorf("%s was created by the syncs of %v, want exactly one", v["_href"], by)
			}
		}
		slices.Sort(numbers)
		syncs := 1
		if base == "s" {
			syncs = 5
		}
		if len(numbers) != syncs+1 || numbers[0] != 0 || numbers[len(numbers)-1] != syncs {
			t.Errorf("repository %s has versions %v, want 0..%d", base, numbers, syncs)
		}
	}
	// Each sync read the upstream's tag list once; s0's twice, killed and
	// run again.
	for up := range remoteHrefs {
		n := 1
		if up == "s0" {
			n = 2
		}
		if got := proxy.tagLists(up); got != n {
			t.Errorf("upstream %s's tag list was read %d times, want %d", up, got, n)
		}
	}

	// Every image pulls through every process, with upstream's digests.
	for _, p := range procs {
		redirected, pulled := 0, 0
		for base, tags := range want {
			for tag, d := range tags {
				redirected += pullHTTP(ctx, t, p.content, base, tag, d)
				pulled++
			}
		}
		t.Logf("%s: pulled %d images, %d blob GETs redirected", p.name, pulled, redirected)
		if p.redirect && redirected == 0 || !p.redirect && redirected != 0 {
			t.Errorf("%s (redirect %v) redirected %d blob GETs", p.name, p.redirect, redirected)
		}
	}
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("podman is not installed: %v", err)
		}
		t.Logf("podman pull skipped: %v", err)
		return
	}
	// Through a process that streams blobs from S3 and through the one that
	// redirects to it (each pull into fresh podman storage).
	podmanPull(ctx, t, procs[0].content+"/r0:real", realImg.Digest)
	podmanPull(ctx, t, procs[1].content+"/r0:real", realImg.Digest)
}

// TestStorageRedirectPodman pulls with podman through one server on SQLite
// and S3 storage (versitygw) that redirects blob GETs to presigned URLs,
// after a sync through the REST API has put the blobs in the bucket. The
// server is configured through MOORING_* variables, and its registry_path
// names the -content-origin it was given.
func TestStorageRedirectPodman(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("podman is not installed: %v", err)
		}
		t.Skipf("needs podman: %v", err)
	}
	s3cfg := s3test.Start(t)
	upstream := regtest.StartDistribution(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	realImg, err := pushRealImage(ctx, t, upstream, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := regtest.Repository(upstream, "hello"); err != nil {
		t.Fatal(err)
	} else if err := r.Tag(ctx, realImg, "latest"); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{name: "redirect", bin: buildServer(t), api: freeAddr(t), content: freeAddr(t), redirect: true,
		env: []string{"MOORING_ADMIN_PASSWORD=admin", "MOORING_STORAGE_REDIRECT=true", "MOORING_CONTENT_ORIGIN=mirror.example.com",
			"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey}}
	p.args = []string{"-api-addr", p.api, "-content-addr", p.content, "-data-dir", t.TempDir(),
		"-storage", fmt.Sprintf("s3://%s?endpoint=%s&region=%s", s3cfg.Bucket, url.QueryEscape(s3cfg.Endpoint), s3cfg.Region)}
	p.start(t)
	c := &restClient{t: t, base: "http://" + p.api, password: "admin"}
	repo := c.post("/pulp/api/v3/repositories/", map[string]any{"name": "hello"})["_href"].(string)
	dist := c.post("/pulp/api/v3/docker-distributions/", map[string]any{"name": "hello", "base_path": "hello", "repository": repo})
	if dist["registry_path"] != "mirror.example.com/hello" {
		t.Errorf("registry_path %v, want it on -content-origin: mirror.example.com/hello", dist["registry_path"])
	}
	remote := c.post("/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "hello", "url": "http://" + upstream, "upstream_name": "hello"})["_href"].(string)
	href := c.post(remote+"sync/", map[string]any{"repository": repo})["task"].(string)
	if tk := c.waitTask(ctx, href); tk.State != "completed" {
		t.Fatalf("sync: %s %+v", tk.State, tk.Error)
	}
	if n := pullHTTP(ctx, t, p.content, "hello", "latest", realImg.Digest); n == 0 {
		t.Error("no blob GET was redirected")
	}
	podmanPull(ctx, t, p.content+"/hello:latest", realImg.Digest)
}

// TestOCIConformanceS3Redirect runs the OCI distribution-spec conformance
// suite, push included, against a server keeping its blobs in S3
// (versitygw) that redirects blob GETs to presigned URLs: what clients
// see of a redirect, and uploads into S3, pass as the filesystem does.
func TestOCIConformanceS3Redirect(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	s3cfg := s3test.Start(t)
	suite := buildConformance(t)
	bin := buildServer(t)
	// Both ways of serving blobs from S3 are held to the same bar.
	for _, redirect := range []bool{false, true} {
		name := map[bool]string{false: "streamed", true: "redirected"}[redirect]
		t.Run(name, func(t *testing.T) {
			password := randomHex(12)
			p := &serverProc{name: "mooring-s3-" + name, bin: bin, api: freeAddr(t), content: freeAddr(t), redirect: redirect,
				env: []string{"MOORING_ADMIN_PASSWORD=" + password,
					"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey}}
			p.args = []string{"-data-dir", t.TempDir(), "-api-addr", p.api, "-content-addr", p.content, "-log-level", "warn",
				"-storage", fmt.Sprintf("s3://%s/conformance-%s?endpoint=%s&region=%s", s3cfg.Bucket, name, url.QueryEscape(s3cfg.Endpoint), s3cfg.Region)}
			if redirect {
				p.args = append(p.args, "-storage-redirect")
			}
			p.start(t)
			r := runConformance(t, suite, pushEnv(p.content, password))
			r.check(t, false)
		})
	}
}

// TestStorageFlags checks that the binary refuses storage settings it
// cannot honour, before touching anything.
func TestStorageFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"-storage-redirect"}, "", "-storage-redirect needs S3 storage"},
		{nil, "MOORING_STORAGE_REDIRECT=maybe", "MOORING_STORAGE_REDIRECT"},
		{[]string{"-storage", "gs://bucket"}, "", "want a directory, file://DIR or s3://BUCKET"},
		{[]string{"-storage", "s3://bucket?endpoint=http://127.0.0.1:1&colour=blue"}, "", `unknown parameter "colour"`},
		{[]string{"-storage", "s3://key:secret@bucket"}, "", "credentials do not belong in the URL"},
		{[]string{"-task-heartbeat", "5s", "-task-dead-after", "6s"}, "", "at least twice -task-heartbeat"},
		{[]string{"-task-heartbeat", "soon"}, "", "want a positive duration"},
	} {
		cmd := exec.Command(bin, append(c.args, "-data-dir", t.TempDir(), "-api-addr", "", "-content-addr", "")...)
		cmd.Env = append(os.Environ(), c.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v %s: %v, output %q; want an error saying %q", c.args, c.env, err, out, c.want)
		}
	}
}

// postgresSchema returns the DSN of a fresh schema in the PostgreSQL
// database MOORING_TEST_POSTGRES names, and a connection to it; the schema
// is dropped when the test ends.
func postgresSchema(t *testing.T) (string, *bun.DB) {
	t.Helper()
	dsn := os.Getenv("MOORING_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatal("MOORING_TEST_REQUIRE is set but MOORING_TEST_POSTGRES is not")
		}
		t.Skip("needs PostgreSQL: set MOORING_TEST_POSTGRES to a DSN such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	ctx := context.Background()
	admin, err := mooringdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := "scaleout_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := mooringdb.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	return u.String(), db
}

// buildServer builds the binary into a temporary directory.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mooring-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serverProc is one server process; start may be called again after it
// was killed.
type serverProc struct {
	name, bin     string
	args, env     []string
	api, content  string
	redirect      bool
	cmd           *exec.Cmd
	log           *testproc.Buffer
	reaped, alive bool
}

func (p *serverProc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	if p.log == nil {
		p.log = &testproc.Buffer{}
		t.Cleanup(func() {
			p.stop(t)
			if t.Failed() {
				t.Logf("%s's log:\n%s", p.name, p.log.String())
			}
		})
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	testproc.DieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.reaped, p.alive = false, true
	waitFor(t, "http://"+p.content+"/v2/")
	waitFor(t, "http://"+p.api+"/pulp/api/v3/docs/api.json")
}

// reap waits for a killed process.
func (p *serverProc) reap() {
	if !p.reaped {
		p.cmd.Wait()
		p.reaped, p.alive = true, false
	}
}

// stop sends SIGTERM and expects a clean exit within 30s.
func (p *serverProc) stop(t *testing.T) {
	if !p.alive {
		p.reap()
		return
	}
	if killed, err := testproc.Terminate(p.cmd, 30*time.Second); killed {
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	} else if err != nil {
		t.Errorf("%s exited with %v after SIGTERM", p.name, err)
	}
	p.reaped, p.alive = true, false
}

// gateProxy is the upstream as the servers see it: it counts tag-list
// reads per repository and holds every blob GET of one repository until
// opened.
type gateProxy struct {
	addr      string
	held      chan struct{} // closed when the first held request arrives
	release   chan struct{}
	heldOnce  sync.Once
	mu        sync.Mutex
	tagListsN map[string]int
}

func newGateProxy(t *testing.T, upstream, holdRepo string) *gateProxy {
	g := &gateProxy{held: make(chan struct{}), release: make(chan struct{}), tagListsN: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	// A held request whose client was killed is no error worth a log line.
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if repo, ok := strings.CutSuffix(strings.TrimPrefix(p, "/v2/"), "/tags/list"); ok {
			g.mu.Lock()
			g.tagListsN[repo]++
			g.mu.Unlock()
		}
		if strings.HasPrefix(p, "/v2/"+holdRepo+"/blobs/sha256:") && r.Method == http.MethodGet {
			select {
			case <-g.release:
			default:
				g.heldOnce.Do(func() { close(g.held) })
				select {
				case <-g.release:
				case <-r.Context().Done():
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.addr = strings.TrimPrefix(srv.URL, "http://")
	return g
}

func (g *gateProxy) open() { close(g.release) }

func (g *gateProxy) tagLists(repo string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tagListsN[repo]
}

// restClient calls one process's REST API as admin.
type restClient struct {
	t        *testing.T
	base     string
	password string
}

func (c *restClient) do(method, path string, body any) map[string]any {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.SetBasicAuth("admin", c.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		c.t.Fatalf("%s %s%s: %s %s", method, c.base, path, resp.Status, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}

func (c *restClient) post(path string, body any) map[string]any {
	c.t.Helper()
	return c.do("POST", path, body)
}

func (c *restClient) get(path string) map[string]any {
	c.t.Helper()
	return c.do("GET", path, nil)
}

type taskState struct {
	State            string   `json:"state"`
	StartedAt        string   `json:"started_at"`
	FinishedAt       string   `json:"finished_at"`
	CreatedResources []string `json:"created_resources"`
	Error            *struct {
		Description string `json:"description"`
	} `json:"error"`
}

func (c *restClient) task(href string) taskState {
	c.t.Helper()
	raw, _ := json.Marshal(c.get(href))
	var tk taskState
	json.Unmarshal(raw, &tk)
	return tk
}

// waitTask polls a task until it has finished.
func (c *restClient) waitTask(ctx context.Context, href string) taskState {
	c.t.Helper()
	for {
		tk := c.task(href)
		if tk.State == "completed" || tk.State == "failed" || tk.State == "canceled" {
			return tk
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("task %s still %s", href, tk.State)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func taskID(href string) string {
	return strings.TrimSuffix(strings.TrimPrefix(href, "/pulp/api/v3/tasks/"), "/")
}

// pullHTTP pulls base:tag from a registry as a client does: the manifest,
// then (for an image) its config and layers, following redirects, checking
// every digest. It returns how many blob GETs were redirected elsewhere.
func pullHTTP(ctx context.Context, t *testing.T, host, base, tag string, want digest.Digest) (redirected int) {
	t.Helper()
	got, mt, err := fetchManifest(ctx, host, base, tag)
	if err != nil || got != want {
		t.Errorf("%s/%s:%s: manifest %s (%s), %v; upstream has %s", host, base, tag, got, mt, err, want)
		return 0
	}
	resp, err := http.Get("http://" + host + "/v2/" + base + "/manifests/" + got.String())
	if err != nil {
		t.Error(err)
		return 0
	}
	var m ocispec.Manifest
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		t.Errorf("%s/%s@%s: %v", host, base, got, err)
		return 0
	}
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		resp, err := http.Get("http://" + host + "/v2/" + base + "/blobs/" + b.Digest.String())
		if err != nil {
			t.Error(err)
			continue
		}
		v := b.Digest.Verifier()
		n, err := io.Copy(v, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n != b.Size || !v.Verified() {
			t.Errorf("%s/%s blob %s: %s, %d of %d bytes, verified %v, %v", host, base, b.Digest, resp.Status, n, b.Size, v.Verified(), err)
		}
		if resp.Request.URL.Host != host {
			redirected++
		}
	}
	return redirected
}

// podmanPull pulls ref (host:port/name:tag) with podman, over plain HTTP,
// and checks the manifest digest podman records.
func podmanPull(ctx context.Context, t *testing.T, ref string, want digest.Digest) {
	t.Helper()
	dir := t.TempDir()
	env := append(os.Environ(), podmanConfig(t, dir)...)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "podman", args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	run("pull", "--tls-verify=false", ref)
	if got := run("image", "inspect", "--format", "{{.Digest}}", ref); got != want.String() {
		t.Errorf("podman pulled %s with digest %s, upstream's is %s", ref, got, want)
	}
}
