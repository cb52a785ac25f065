package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// interleaveFor is how long the workers of TestLifecycleInterleaved run on
// each database.
const interleaveFor = 12 * time.Second

// TestLifecycleInterleaved has several clients push, sync, tag, untag,
// copy, add, remove, modify, set retention, delete versions and run
// orphan cleanups with no protection time, at random and all at once, on
// SQLite (one server process) and on PostgreSQL (two server processes
// sharing the database and the blob storage). Afterwards every manifest of
// every remaining version pulls with all its blobs, each checked against
// its digest; no version holds a unit that is gone; and, after a final
// cleanup, storage holds exactly the blobs that a unit (or a staged push)
// references.
func TestLifecycleInterleaved(t *testing.T) {
	if testing.Short() {
		t.Skip("interleaving test skipped in -short mode")
	}
	if _, err := exec.LookPath(regtest.DistributionBinary); err != nil && os.Getenv("MOORING_TEST_REQUIRE") != "" {
		t.Fatalf("MOORING_TEST_REQUIRE is set but %s is not installed", regtest.DistributionBinary)
	}
	upstream := regtest.StartDistribution(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := &regtest.ImageOpts{Seed: "il-base", LayerSize: 3000}
	for i := range 4 {
		if _, err := regtest.PushImage(ctx, upstream, "up/a", fmt.Sprintf("a%d", i), regtest.ImageOpts{Seed: fmt.Sprintf("il-a%d", i), Base: base}); err != nil {
			t.Fatal(err)
		}
	}
	amd, err := regtest.PushImage(ctx, upstream, "up/b", "solo", regtest.ImageOpts{Seed: "il-b-amd", Layers: 2, Base: base})
	if err != nil {
		t.Fatal(err)
	}
	arm, err := regtest.PushImage(ctx, upstream, "up/b", "", regtest.ImageOpts{Seed: "il-b-arm", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := regtest.PushIndex(ctx, upstream, "up/b", "multi", regtest.OCI, amd, arm); err != nil {
		t.Fatal(err)
	}
	bin := buildServer(t)

	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		p := interleaveServer(t, bin, "sqlite", []string{"-data-dir", filepath.Join(dir, "data")})
		db, err := mooringdb.Open(ctx, filepath.Join(dir, "data", "mooring.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		interleave(t, []*serverProc{p}, upstream, db, filepath.Join(dir, "data", "blobs"))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn, db := postgresSchema(t)
		blobs := filepath.Join(t.TempDir(), "blobs")
		args := []string{"-data-dir", t.TempDir(), "-database", dsn, "-storage", blobs}
		p0 := interleaveServer(t, bin, "pg-0", args)
		p1 := interleaveServer(t, bin, "pg-1", append(slices.Clone(args), "-data-dir", t.TempDir()))
		interleave(t, []*serverProc{p0, p1}, upstream, db, blobs)
	})
}

var interleavePassword = randomHex(12)

func interleaveServer(t *testing.T, bin, name string, args []string) *serverProc {
	t.Helper()
	p := &serverProc{name: name, bin: bin, api: freeAddr(t), content: freeAddr(t)}
	p.args = append(slices.Clone(args), "-api-addr", p.api, "-content-addr", p.content, "-workers", "2", "-log-level", "warn")
	p.env = []string{"MOORING_ADMIN_PASSWORD=" + interleavePassword}
	p.start(t)
	return p
}

// interleaving is the state the workers share.
type interleaving struct {
	t        *testing.T
	procs    []*serverProc
	apis     []*api
	upstream string
	remotes  []string // hrefs
	repos    []string // hrefs of synced and promotion repositories
	mu       sync.Mutex
	pushRepo map[string]string // push name -> repository href, once it exists

	ops, refused, failed, blobUnknown atomic.Int64
	counts                            sync.Map // op name -> *atomic.Int64
	// cleaned sums what the cleanups reported: units, blobs, bytes.
	cleaned [3]atomic.Int64
	// why are the distinct reasons tasks failed for, with counts.
	why sync.Map
}

func (il *interleaving) count(op string) {
	n, _ := il.counts.LoadOrStore(op, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func interleave(t *testing.T, procs []*serverProc, upstream string, db *bun.DB, blobDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	il := &interleaving{t: t, procs: procs, upstream: upstream, pushRepo: map[string]string{}}
	for _, p := range procs {
		il.apis = append(il.apis, &api{base: "http://" + p.api, password: interleavePassword})
	}
	c := il.apis[0]
	must := func(out map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, up := range []string{"up/a", "up/b"} {
		r := must(c.must(ctx, "POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": up, "url": "http://" + upstream, "upstream_name": up}))
		il.remotes = append(il.remotes, r["_href"].(string))
	}
	for _, name := range []string{"s1", "s2", "p1", "p2"} {
		r := must(c.must(ctx, "POST", "/pulp/api/v3/repositories/", map[string]any{"name": name}))
		il.repos = append(il.repos, r["_href"].(string))
		must(c.must(ctx, "POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": name, "base_path": "il/" + name, "repository": r["_href"]}))
	}

	// Past the deadline the workers go on, up to three times as long, until
	// some cleanup has deleted a blob: on a loaded machine a short run may
	// not have reclaimed anything yet, and would then prove nothing.
	deadline := time.Now().Add(interleaveFor)
	hardDeadline := time.Now().Add(3 * interleaveFor)
	more := func() bool {
		now := time.Now()
		return ctx.Err() == nil && (now.Before(deadline) || il.cleaned[1].Load() == 0 && now.Before(hardDeadline))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for more() {
				step := il.step
				if w == 0 && time.Now().After(deadline) {
					step = il.orphan
				}
				if err := step(ctx, rng); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var summary []string
	il.counts.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(summary)
	t.Logf("%d operations (%s); %d refused as bad input, %d tasks failed as the state changed under them, %d manifest pushes found a blob deleted",
		il.ops.Load(), strings.Join(summary, " "), il.refused.Load(), il.failed.Load(), il.blobUnknown.Load())
	t.Logf("the cleanups deleted %d units and %d blobs (%d bytes)", il.cleaned[0].Load(), il.cleaned[1].Load(), il.cleaned[2].Load())
	il.why.Range(func(k, v any) bool {
		t.Logf("  %d tasks failed: %s…", v.(*atomic.Int64).Load(), k)
		return true
	})
	if il.cleaned[1].Load() == 0 {
		t.Error("no cleanup deleted a blob: the test proved nothing")
	}
	if t.Failed() {
		return
	}

	// Quiesce, clean up once more, then check.
	if tk, err := c.run(ctx, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0}); err != nil || taskError(tk) != "" {
		t.Fatalf("final cleanup: %v %v", err, tk)
	}
	il.checkPulls(ctx, c, db)
	checkStorage(ctx, t, db, blobDir)
}

// step runs one random operation.
func (il *interleaving) step(ctx context.Context, rng *rand.Rand) error {
	il.ops.Add(1)
	c := il.apis[rng.IntN(len(il.apis))]
	ops := []struct {
		name   string
		weight int
		f      func(context.Context, *rand.Rand, *api) error
	}{
		{"push", 6, il.push}, {"sync", 3, il.sync}, {"action", 12, il.action},
		{"retain", 1, il.retain}, {"delete_version", 2, il.deleteVersion}, {"cleanup", 2, il.cleanup},
	}
	total := 0
	for _, op := range ops {
		total += op.weight
	}
	n := rng.IntN(total)
	for _, op := range ops {
		if n < op.weight {
			il.count(op.name)
			err := op.f(ctx, rng, c)
			// What a worker looked up may be gone a moment later (a version
			// retention deleted, say): a 4xx on a lookup is a refusal.
			var se *statusError
			if (op.name == "action" || op.name == "delete_version") && errors.As(err, &se) && se.status < 500 {
				il.refused.Add(1)
				return nil
			}
			return err
		}
		n -= op.weight
	}
	return nil
}

// repositories returns the hrefs of every repository the workers change.
func (il *interleaving) repositories() []string {
	il.mu.Lock()
	defer il.mu.Unlock()
	out := slices.Clone(il.repos)
	for _, h := range il.pushRepo {
		out = append(out, h)
	}
	return out
}

func (il *interleaving) push(ctx context.Context, rng *rand.Rand, c *api) error {
	name := []string{"il/push-x", "il/push-y"}[rng.IntN(2)]
	host := strings.TrimPrefix(c.base, "http://")
	host = il.contentOf(host)
	r, err := remote.NewRepository(host + "/" + name)
	if err != nil {
		return err
	}
	r.PlainHTTP = true
	r.Client = &auth.Client{Client: http.DefaultClient, Cache: auth.NewCache(),
		Credential: auth.StaticCredential(host, auth.Credential{Username: "admin", Password: interleavePassword})}
	opts := regtest.ImageOpts{Seed: fmt.Sprintf("il-push-%d", rng.IntN(30)), Base: &regtest.ImageOpts{Seed: "il-base", LayerSize: 3000}}
	d, err := regtest.PushImageTo(ctx, r, fmt.Sprintf("t%d", rng.IntN(4)), opts)
	if err == nil && rng.IntN(4) == 0 {
		opts.Seed += "-arm"
		opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
		var d2 ocispec.Descriptor
		if d2, err = regtest.PushImageTo(ctx, r, "", opts); err == nil {
			_, err = regtest.PushIndexTo(ctx, r, "idx", regtest.OCI, d, d2)
		}
	}
	if err != nil {
		// A blob found in the repository a moment before it was removed
		// and its bytes reclaimed: the spec's answer, never a dangling
		// reference.
		var resp *errcode.ErrorResponse
		if errors.As(err, &resp) && len(resp.Errors) > 0 &&
			(resp.Errors[0].Code == "MANIFEST_BLOB_UNKNOWN" || resp.Errors[0].Code == "BLOB_UNKNOWN") {
			il.blobUnknown.Add(1)
			return nil
		}
		return fmt.Errorf("push to %s: %w", name, err)
	}
	il.mu.Lock()
	_, known := il.pushRepo[name]
	il.mu.Unlock()
	if !known {
		repos, err := c.results(ctx, "/pulp/api/v3/repositories/?name="+url.QueryEscape(name))
		if err != nil || len(repos) != 1 {
			return fmt.Errorf("repository %s after a push: %v %v", name, repos, err)
		}
		il.mu.Lock()
		il.pushRepo[name] = repos[0]["_href"].(string)
		il.mu.Unlock()
	}
	return nil
}

// contentOf returns the registry address of the process whose API is at
// apiHost.
func (il *interleaving) contentOf(apiHost string) string {
	for _, p := range il.procs {
		if p.api == apiHost {
			return p.content
		}
	}
	return il.procs[0].content
}

func (il *interleaving) sync(ctx context.Context, rng *rand.Rand, c *api) error {
	remoteHref := il.remotes[rng.IntN(len(il.remotes))]
	repo := il.repos[rng.IntN(2)] // s1 or s2
	tk, err := c.run(ctx, remoteHref+"sync/", map[string]any{"repository": repo, "mirror": rng.IntN(3) == 0})
	if err != nil {
		return err
	}
	if e := taskError(tk); e != "" {
		return fmt.Errorf("sync into %s: %s", repo, e)
	}
	return nil
}

func (il *interleaving) cleanup(ctx context.Context, _ *rand.Rand, c *api) error {
	tk, err := c.run(ctx, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0})
	if err != nil {
		return err
	}
	if e := taskError(tk); e != "" {
		return fmt.Errorf("orphan cleanup: %s", e)
	}
	for _, r := range tk["progress_reports"].([]any) {
		r := r.(map[string]any)
		i := slices.Index([]string{"clean-up.content", "clean-up.blobs", "clean-up.bytes"}, r["code"].(string))
		if i >= 0 {
			il.cleaned[i].Add(int64(r["done"].(float64)))
		}
	}
	return nil
}

func (il *interleaving) retain(ctx context.Context, rng *rand.Rand, c *api) error {
	repos := il.repositories()
	var n any
	if k := rng.IntN(3); k > 0 {
		n = 2 * k
	}
	_, err := c.must(ctx, "PATCH", repos[rng.IntN(len(repos))], map[string]any{"retain_repo_versions": n})
	return err
}

// orphan makes orphans for cleanup to reclaim while the other workers go
// on: it empties a promotion repository and deletes its older versions,
// then runs a cleanup.
func (il *interleaving) orphan(ctx context.Context, rng *rand.Rand) error {
	c := il.apis[rng.IntN(len(il.apis))]
	il.ops.Add(1)
	il.count("orphan")
	repo := il.repos[2+rng.IntN(2)]
	if err := il.accepted(ctx, c, "POST", repo+"remove/", map[string]any{"content_units": []string{"*"}}); err != nil {
		return err
	}
	versions, err := c.results(ctx, repo+"versions/")
	if err != nil {
		return err
	}
	for _, v := range versions[1:] {
		if err := il.accepted(ctx, c, "DELETE", v["_href"].(string), nil); err != nil {
			return err
		}
	}
	return il.cleanup(ctx, rng, c)
}

func (il *interleaving) deleteVersion(ctx context.Context, rng *rand.Rand, c *api) error {
	repos := il.repositories()
	repo := repos[rng.IntN(len(repos))]
	versions, err := c.results(ctx, repo+"versions/")
	if err != nil || len(versions) == 0 {
		return err
	}
	v := versions[rng.IntN(len(versions))]["_href"].(string)
	return il.accepted(ctx, c, "DELETE", v, nil)
}

// accepted makes a request answered by a task, waits for it, and counts
// refusals (4xx) and failed tasks: both happen when the state changed
// between a worker's look and its request.
func (il *interleaving) accepted(ctx context.Context, c *api, method, path string, body any) error {
	status, out, err := c.call(ctx, method, path, body)
	switch {
	case err != nil:
		return err
	case status == http.StatusAccepted:
	case status >= 400 && status < 500:
		il.refused.Add(1)
		return nil
	default:
		return fmt.Errorf("%s %s: %d %v", method, path, status, out)
	}
	tk, err := c.wait(ctx, out["task"].(string))
	if err != nil {
		return err
	}
	if tk["state"] != "completed" {
		il.failed.Add(1)
		why := taskError(tk)
		// Digests and ids vary; the reason is what comes before them.
		if i := strings.IndexAny(why, "0123456789\""); i > 0 {
			why = why[:i]
		}
		n, _ := il.why.LoadOrStore(why, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	return nil
}

// unitsOf returns the hrefs of a version's units of the given kinds.
func unitsOf(ctx context.Context, c *api, vhref string, kinds ...string) ([]string, error) {
	var out []string
	for _, k := range kinds {
		units, err := c.results(ctx, "/pulp/api/v3/content/docker/"+k+"/?repository_version="+url.QueryEscape(vhref))
		if err != nil {
			return nil, err
		}
		for _, u := range units {
			out = append(out, u["_href"].(string))
		}
	}
	return out, nil
}

func pick[T any](rng *rand.Rand, xs []T) []T {
	if len(xs) == 0 {
		return nil
	}
	return []T{xs[rng.IntN(len(xs))]}
}

func (il *interleaving) action(ctx context.Context, rng *rand.Rand, c *api) error {
	repos := il.repositories()
	target := repos[rng.IntN(len(repos))]
	source := repos[rng.IntN(len(repos))]
	r, err := c.must(ctx, "GET", target, nil)
	if err != nil {
		return err
	}
	latest := r["_latest_version_href"].(string)
	s, err := c.must(ctx, "GET", source, nil)
	if err != nil {
		return err
	}
	srcLatest := s["_latest_version_href"].(string)
	tagKinds := []string{"manifest-tags", "manifest-list-tags"}
	docKinds := []string{"manifests", "manifest-lists"}
	var body map[string]any
	action := []string{"tag", "untag", "add", "remove", "copy_tags", "copy_manifests", "modify"}[rng.IntN(7)]
	switch action {
	case "tag":
		docs, err := c.results(ctx, "/pulp/api/v3/content/docker/"+docKinds[rng.IntN(2)]+"/?repository_version="+url.QueryEscape(latest))
		if err != nil || len(docs) == 0 {
			return err
		}
		body = map[string]any{"tag": fmt.Sprintf("r%d", rng.IntN(4)), "digest": docs[rng.IntN(len(docs))]["digest"]}
	case "untag":
		tags, err := c.results(ctx, "/pulp/api/v3/content/docker/"+tagKinds[rng.IntN(2)]+"/?repository_version="+url.QueryEscape(latest))
		if err != nil || len(tags) == 0 {
			return err
		}
		body = map[string]any{"tag": tags[rng.IntN(len(tags))]["name"]}
	case "add", "remove":
		from := srcLatest
		if action == "remove" {
			from = latest
		}
		units, err := unitsOf(ctx, c, from, append(slices.Clone(tagKinds), docKinds...)...)
		if err != nil || len(units) == 0 {
			return err
		}
		body = map[string]any{"content_units": pick(rng, units)}
		if action == "remove" && rng.IntN(8) == 0 {
			body["content_units"] = []string{"*"}
		}
	case "copy_tags":
		body = map[string]any{"source_repository": source}
		if rng.IntN(2) == 0 {
			tags, err := c.results(ctx, "/pulp/api/v3/content/docker/manifest-tags/?repository_version="+url.QueryEscape(srcLatest))
			if err != nil || len(tags) == 0 {
				return err
			}
			body["names"] = []any{tags[rng.IntN(len(tags))]["name"]}
		}
	case "copy_manifests":
		body = map[string]any{"source_repository_version": srcLatest}
	case "modify":
		versions, err := c.results(ctx, target+"versions/")
		if err != nil || len(versions) == 0 {
			return err
		}
		add, err := unitsOf(ctx, c, srcLatest, tagKinds...)
		if err != nil {
			return err
		}
		remove, err := unitsOf(ctx, c, latest, tagKinds...)
		if err != nil {
			return err
		}
		body = map[string]any{"base_version": versions[rng.IntN(len(versions))]["_href"],
			"add_content_units": pick(rng, add), "remove_content_units": pick(rng, remove)}
	}
	return il.accepted(ctx, c, "POST", target+action+"/", body)
}

// checkPulls pulls, through a distribution pinned to each version in
// turn, every manifest and list of every version of every repository,
// and every blob of each manifest and child of each list, each checked
// against its digest.
func (il *interleaving) checkPulls(ctx context.Context, c *api, db *bun.DB) {
	t := il.t
	repos, err := c.results(ctx, "/pulp/api/v3/repositories/")
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.results(ctx, repos[0]["_versions_href"].(string))
	if err != nil {
		t.Fatal(err)
	}
	dist, err := c.must(ctx, "POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": "zz-check", "base_path": "zz/check", "repository_version": first[0]["_href"]})
	if err != nil {
		t.Fatal(err)
	}
	host := il.procs[0].content
	versions, manifests, blobs := 0, 0, 0
	for _, repo := range repos {
		vs, err := c.results(ctx, repo["_versions_href"].(string))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			vhref := v["_href"].(string)
			if _, err := c.must(ctx, "PATCH", dist["_href"].(string), map[string]any{"repository_version": vhref}); err != nil {
				t.Fatal(err)
			}
			versions++
			for _, kind := range []string{"manifests", "manifest-lists"} {
				docs, err := c.results(ctx, "/pulp/api/v3/content/docker/"+kind+"/?repository_version="+url.QueryEscape(vhref))
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range docs {
					manifests++
					n, err := pullVerified(ctx, host, "zz/check", digest.Digest(d["digest"].(string)))
					blobs += n
					if err != nil {
						t.Errorf("%s (%s): %v", vhref, repo["name"], err)
						diagnose(ctx, t, db, repo["_href"].(string), d["digest"].(string), err)
					}
				}
			}
		}
	}
	t.Logf("checked %d versions of %d repositories: %d manifests and lists, %d blobs, every digest verified", versions, len(repos), manifests, blobs)
}

// diagnose logs, for a pull that failed, the membership history in the
// repository of the manifest and of the blob the error names, so that a
// failure says whether the version lost a unit or storage lost bytes.
func diagnose(ctx context.Context, t *testing.T, db *bun.DB, repoHref, manifest string, pullErr error) {
	repoID := path.Base(strings.TrimSuffix(repoHref, "/"))
	digests := []string{manifest}
	if m := regexp.MustCompile(`blob (sha256:[0-9a-f]{64})`).FindStringSubmatch(pullErr.Error()); m != nil {
		digests = append(digests, m[1])
	}
	for _, d := range digests {
		var rows []struct {
			ID      int64     `bun:"id"`
			Type    string    `bun:"type"`
			Created time.Time `bun:"created_at"`
			Added   *int      `bun:"version_added"`
			Removed *int      `bun:"version_removed"`
		}
		err := db.NewSelect().TableExpr("contents AS c").
			ColumnExpr("c.id, c.type, c.created_at, rc.version_added, rc.version_removed").
			Join("LEFT JOIN repository_contents AS rc ON rc.content_id = c.id AND rc.repository_id = ?", repoID).
			Where("c.digest = ?", d).OrderExpr("c.id, rc.version_added").Scan(ctx, &rows)
		if err != nil {
			t.Logf("diagnose %s: %v", d, err)
			continue
		}
		for _, r := range rows {
			t.Logf("diagnose %s: unit %d %s created %s, in repository %s from %v to %v", d, r.ID, r.Type, r.Created.Format(time.StampMicro), repoID, deref(r.Added), deref(r.Removed))
		}
		if len(rows) == 0 {
			t.Logf("diagnose %s: no unit", d)
		}
	}
	var versions []int
	_ = db.NewSelect().Table("repository_versions").Column("number").Where("repository_id = ?", repoID).Order("number").Scan(ctx, &versions)
	t.Logf("diagnose: repository %s has versions %v", repoID, versions)
}

func deref(p *int) any {
	if p == nil {
		return "-"
	}
	return *p
}

// pullVerified GETs manifest d from base on host, then its config and
// layers (or, for a list, its children), checking every digest; it
// returns how many blobs it checked.
func pullVerified(ctx context.Context, host, base string, d digest.Digest) (int, error) {
	got, mt, err := fetchManifest(ctx, host, base, d.String())
	if err != nil {
		return 0, fmt.Errorf("manifest %s: %w", d, err)
	}
	if got != d {
		return 0, fmt.Errorf("manifest %s came as %s", d, got)
	}
	resp, err := http.Get("http://" + host + "/v2/" + base + "/manifests/" + d.String())
	if err != nil {
		return 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if strings.Contains(mt, "index") || strings.Contains(mt, "list") {
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return 0, err
		}
		for _, child := range idx.Manifests {
			if got, _, err := fetchManifest(ctx, host, base, child.Digest.String()); err != nil || got != child.Digest {
				return 0, fmt.Errorf("list %s: child %s: %s, %v", d, child.Digest, got, err)
			}
		}
		return 0, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, err
	}
	n := 0
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		resp, err := http.Get("http://" + host + "/v2/" + base + "/blobs/" + b.Digest.String())
		if err != nil {
			return n, err
		}
		v := b.Digest.Verifier()
		size, err := io.Copy(v, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || size != b.Size || !v.Verified() {
			return n, fmt.Errorf("manifest %s: blob %s: %s, %d of %d bytes, verified %v, %v", d, b.Digest, resp.Status, size, b.Size, v.Verified(), err)
		}
		n++
	}
	return n, nil
}

// checkStorage checks the database and the blob store agree: no version
// holds a unit that is gone, and the store holds exactly the blobs of the
// blob units and staged push blobs.
func checkStorage(ctx context.Context, t *testing.T, db *bun.DB, blobDir string) {
	var dangling int
	if err := db.NewSelect().TableExpr("repository_contents AS rc").
		Where("NOT EXISTS (SELECT 1 FROM contents AS c WHERE c.id = rc.content_id)").
		ColumnExpr("count(*)").Scan(ctx, &dangling); err != nil {
		t.Fatal(err)
	}
	if dangling > 0 {
		t.Errorf("%d memberships name units that are gone", dangling)
	}
	var units, staged []digest.Digest
	if err := db.NewSelect().Table("contents").Column("digest").
		Where("type = 'docker.manifest-blob' AND foreign_layer = ?", false).Scan(ctx, &units); err != nil {
		t.Fatal(err)
	}
	if err := db.NewSelect().Table("pending_blobs").ColumnExpr("DISTINCT digest").Scan(ctx, &staged); err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]bool{}
	for _, d := range slices.Concat(units, staged) {
		want[d] = true
	}
	fs, err := filesystem.New(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[digest.Digest]bool{}
	if err := fs.List(ctx, func(info storage.Info) error {
		stored[info.Digest] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var extra, missing []string
	for d := range stored {
		if !want[d] {
			extra = append(extra, d.String())
		}
	}
	for d := range want {
		if !stored[d] {
			missing = append(missing, d.String())
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		t.Errorf("after the final cleanup, storage holds %d blobs no unit references %v, and lacks %d that units reference %v",
			len(extra), extra, len(missing), missing)
	}
	t.Logf("storage holds %d blobs: those of %d blob units and %d staged push blobs", len(stored), len(units), len(staged))
	if len(units) == 0 {
		t.Error("no blob units left: the test proved nothing")
	}
}
