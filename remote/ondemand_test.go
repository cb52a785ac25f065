package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
)

// lazySync stores a remote of the given policy for url and syncs it into
// the fixture's repository.
func lazySync(t *testing.T, f *fixture, url, upstreamName string, p remote.Policy) *remote.Remote {
	t.Helper()
	r := remote.New("up-"+string(p), url, upstreamName)
	r.Policy = p
	if err := remote.NewStore(f.repos.DB()).Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	f.sync(t, r, remote.SyncOptions{})
	return r
}

func (f *fixture) fetcher(opts remote.FetcherOptions) *remote.Fetcher {
	if opts.Retry == (remote.RetryPolicy{}) {
		opts.Retry = fastRetry
	}
	return remote.NewFetcher(f.repos, remote.NewStore(f.repos.DB()), f.blobs, opts)
}

// unit returns the blob unit of d.
func (f *fixture) unit(t *testing.T, d digest.Digest) *repository.Content {
	t.Helper()
	c, err := f.repos.ContentByDigest(context.Background(), content.TypeBlob, d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) stored(d digest.Digest) bool {
	_, err := f.blobs.Stat(context.Background(), d)
	return err == nil
}

// readAll fetches blob d of size bytes through fe and reads it whole.
func (f *fixture) readAll(ctx context.Context, fe *remote.Fetcher, d digest.Digest, size int64) ([]byte, error) {
	rb, err := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: d, Size: size})
	if err != nil {
		return nil, err
	}
	defer rb.Close()
	return io.ReadAll(rb)
}

// TestSyncOnDemand: an on_demand or streamed sync makes the version an
// immediate sync makes (same units, same summary), downloads configs but
// not layers, and records where each blob can be fetched from.
func TestSyncOnDemand(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		host, url, reqs := upstream(t)
		pushSample(t, host, "team/app")
		eager := newFixture(t, dbtest.Open(t, "sqlite"))
		eager.sync(t, remote.New("up", url, "team/app"), remote.SyncOptions{})
		for _, p := range []remote.Policy{remote.PolicyOnDemand, remote.PolicyStreamed} {
			t.Run(string(p), func(t *testing.T) {
				f := newFixtureIn(t, db, "mirror-"+string(p))
				reqs.reset()
				r := lazySync(t, f, url, "team/app", p)
				if got, want := unitSet(t, f), unitSet(t, eager); !slices.Equal(got, want) {
					t.Errorf("%s sync holds %d units, immediate %d:\n%v\n%v", p, len(got), len(want), got, want)
				}
				gotSum, _ := f.repos.Summary(ctx, f.repoID, 1)
				wantSum, _ := eager.repos.Summary(ctx, eager.repoID, 1)
				if !equalSummary(gotSum, wantSum) {
					t.Errorf("summary %+v, want the immediate sync's %+v", gotSum, wantSum)
				}
				configs := 0
				for _, b := range f.units(t, content.TypeBlob) {
					isConfig := b.MediaType == content.MediaTypeDockerConfig || b.MediaType == content.MediaTypeOCIConfig
					if isConfig {
						configs++
					}
					if f.stored(b.Digest) != isConfig || b.OnDemand == isConfig {
						t.Errorf("blob %s (%s): stored %v, on-demand %v", b.Digest, b.MediaType, f.stored(b.Digest), b.OnDemand)
					}
					srcs, err := f.repos.Sources(ctx, f.repoID, b.Digest)
					if err != nil || len(srcs) == 0 || srcs[0].RemoteID != r.ID || !srcs[0].Own {
						t.Errorf("sources of %s: %+v %v", b.Digest, srcs, err)
					}
				}
				if got := reqs.get("GET blobs"); got != configs || configs != 4 {
					t.Errorf("%d blob GETs for %d configs", got, configs)
				}
			})
		}
	})
}

// newFixtureIn is a fixture whose repository, of the given name, is in db,
// which may hold others.
func newFixtureIn(t *testing.T, db *bun.DB, name string) *fixture {
	t.Helper()
	if err := remote.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, dbtest.Open(t, "sqlite")) // for its blob store
	f.repos = repository.NewStore(db)
	f.syncer.Repos = f.repos
	r, err := f.repos.CreateRepository(context.Background(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	f.repoID = r.ID
	return f
}

func unitSet(t *testing.T, f *fixture) []string {
	var out []string
	for _, u := range f.units(t, content.Types...) {
		out = append(out, string(u.Type)+" "+u.Digest.String()+" "+u.Name)
	}
	slices.Sort(out)
	return out
}

func equalSummary(a, b *repository.Summary) bool {
	eq := func(x, y map[content.Type]int) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	return a != nil && b != nil && eq(a.Added, b.Added) && eq(a.Removed, b.Removed) && eq(a.Present, b.Present)
}

// gate holds the body of GETs of one blob after its first half until it
// is opened, and counts them.
type gate struct {
	h       http.Handler
	path    string
	half    int64
	open    chan struct{}
	halfway chan struct{}
	once    sync.Once
	gets    atomic.Int64
	// gone is closed when a held request's client gives up.
	gone     chan struct{}
	goneOnce sync.Once
}

func newGate(h http.Handler, repo string, d digest.Digest, size int64) *gate {
	return &gate{h: h, path: "/v2/" + repo + "/blobs/" + d.String(), half: size / 2,
		open: make(chan struct{}), halfway: make(chan struct{}), gone: make(chan struct{})}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != g.path {
		g.h.ServeHTTP(w, r)
		return
	}
	g.gets.Add(1)
	g.h.ServeHTTP(&gatedWriter{ResponseWriter: w, g: g, ctx: r.Context()}, r)
}

type gatedWriter struct {
	http.ResponseWriter
	g   *gate
	ctx context.Context
	n   int64
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	if w.n <= w.g.half && w.n+int64(len(p)) > w.g.half {
		first := w.g.half - w.n
		n, err := w.ResponseWriter.Write(p[:first])
		w.n += int64(n)
		if err != nil {
			return n, err
		}
		http.NewResponseController(w.ResponseWriter).Flush()
		w.g.once.Do(func() { close(w.g.halfway) })
		select {
		case <-w.g.open:
		case <-w.ctx.Done():
			w.g.goneOnce.Do(func() { close(w.g.gone) })
			return n, w.ctx.Err()
		}
		m, err := w.ResponseWriter.Write(p[first:])
		w.n += int64(m)
		return n + m, err
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// TestFetcherSingleFlight: 20 readers of a blob not stored cause one
// upstream GET; each receives the first half before the upstream sends the
// rest; every one gets the whole blob, which is then stored and marked so.
func TestFetcherSingleFlight(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		h := regtest.InProcessHandler()
		host := strings.TrimPrefix(serve(t, h), "http://")
		const size = 8 << 20
		if _, err := regtest.PushImage(ctx, host, "team/big", "v1", regtest.ImageOpts{Seed: "big", LayerSize: size}); err != nil {
			t.Fatal(err)
		}
		layer := regtest.LayerDescriptor("big", 0, size, "").Digest
		want, _ := io.ReadAll(regtest.LayerReader("big", 0, size))
		g := newGate(h, "team/big", layer, size)
		lazySync(t, f, serve(t, g), "team/big", remote.PolicyOnDemand)
		fe := f.fetcher(remote.FetcherOptions{})

		const clients = 20
		got := make([]atomic.Int64, clients)
		results := make([][]byte, clients)
		errs := make([]error, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				rb, err := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: layer, Size: size})
				if err != nil {
					errs[i] = err
					return
				}
				defer rb.Close()
				var buf bytes.Buffer
				p := make([]byte, 64<<10)
				for {
					n, err := rb.Read(p)
					buf.Write(p[:n])
					got[i].Add(int64(n))
					if err == io.EOF {
						break
					}
					if err != nil {
						errs[i] = err
						return
					}
				}
				results[i] = buf.Bytes()
			})
		}
		<-g.halfway
		deadline := time.Now().Add(20 * time.Second)
		for i := range clients {
			for got[i].Load() < size/2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := got[i].Load(); n < size/2 {
				t.Errorf("client %d has %d bytes while the upstream holds the second half; want the first half (%d) as it arrived", i, n, size/2)
			}
		}
		close(g.open)
		wg.Wait()
		for i := range clients {
			if errs[i] != nil || !bytes.Equal(results[i], want) {
				t.Errorf("client %d: %d bytes, %v", i, len(results[i]), errs[i])
			}
		}
		if n := g.gets.Load(); n != 1 {
			t.Errorf("%d upstream GETs of the blob for %d clients, want 1", n, clients)
		}
		waitFor(t, "the blob to be stored", func() bool { return f.stored(layer) && !f.unit(t, layer).OnDemand })
		f.checkBlob(t, layer, bytes.NewReader(want))
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestFetcherLeave: a reader that leaves does not stop the others; when
// the last leaves, the upstream request is given up and nothing stored.
func TestFetcherLeave(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	h := regtest.InProcessHandler()
	host := strings.TrimPrefix(serve(t, h), "http://")
	const size = 1 << 20
	if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: "leave", LayerSize: size, Layers: 2}); err != nil {
		t.Fatal(err)
	}
	stay, leave := regtest.LayerDescriptor("leave", 0, size, "").Digest, regtest.LayerDescriptor("leave", 1, size, "").Digest
	g1 := newGate(h, "team/app", stay, size)
	g2 := newGate(g1, "team/app", leave, size)
	lazySync(t, f, serve(t, g2), "team/app", remote.PolicyOnDemand)
	fe := f.fetcher(remote.FetcherOptions{})

	// Two readers of one blob; one leaves half way, the other finishes.
	a, _ := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: stay, Size: size})
	b, _ := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: stay, Size: size})
	for _, rb := range []*remote.RemoteBlob{a, b} {
		if err := rb.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	<-g1.halfway
	if _, err := io.ReadFull(a, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	close(g1.open)
	rest, err := io.ReadAll(b)
	b.Close()
	if err != nil || int64(len(rest)) != size {
		t.Fatalf("the reader that stayed got %d bytes, %v", len(rest), err)
	}
	if g1.gets.Load() != 1 {
		t.Errorf("%d upstream GETs", g1.gets.Load())
	}
	waitFor(t, "the blob to be stored", func() bool { return f.stored(stay) })

	// The only reader of another blob leaves: the download stops.
	c, _ := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: leave, Size: size})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-g2.halfway
	c.Close()
	select {
	case <-g2.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request went on after every reader left")
	}
	time.Sleep(50 * time.Millisecond)
	if f.stored(leave) || !f.unit(t, leave).OnDemand {
		t.Error("a download every reader left was stored")
	}
}

// TestFetcherMismatch: bytes that do not hash to the blob fail every
// reader (none gets the whole blob), store nothing and put the source in a
// cooldown; after it, the next pull fetches and stores the blob.
func TestFetcherMismatch(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, _, _ := upstream(t)
	const size = 1 << 20
	if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: "bad", LayerSize: size}); err != nil {
		t.Fatal(err)
	}
	layer := regtest.LayerDescriptor("bad", 0, size, "").Digest
	p := &faulty{h: proxyTo(t, host), fault: corrupt, match: func(path string) bool { return strings.HasSuffix(path, layer.String()) }, times: 0}
	lazySync(t, f, serve(t, p), "team/app", remote.PolicyOnDemand)
	p.mu.Lock()
	p.times = 1
	p.mu.Unlock()
	fe := f.fetcher(remote.FetcherOptions{Cooldown: 300 * time.Millisecond})

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for range 5 {
		wg.Go(func() {
			data, err := f.readAll(ctx, fe, layer, size)
			if err == nil {
				err = errors.New("read " + string(rune(len(data))) + " bytes without error")
			}
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range failures {
		if !errors.Is(err, errdef.ErrUnavailable) {
			t.Errorf("reader of corrupt bytes: %v, want an upstream failure", err)
		}
	}
	if f.stored(layer) || !f.unit(t, layer).OnDemand {
		t.Fatal("corrupt bytes were stored")
	}
	// Cooling down: no request to the upstream.
	before := len(p.when["/v2/team/app/blobs/"+layer.String()])
	_, err := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: layer, Size: size})
	var ra *errdef.RetryAfter
	if !errors.As(err, &ra) || !errors.Is(err, errdef.ErrUnavailable) {
		t.Errorf("during the cooldown: %v, want ErrUnavailable with a Retry-After", err)
	}
	if after := len(p.when["/v2/team/app/blobs/"+layer.String()]); after != before {
		t.Errorf("%d upstream requests during the cooldown", after-before)
	}
	time.Sleep(400 * time.Millisecond)
	data, err := f.readAll(ctx, fe, layer, size)
	if err != nil || digest.FromBytes(data) != layer {
		t.Fatalf("after the cooldown: %d bytes, %v", len(data), err)
	}
	waitFor(t, "the blob to be stored", func() bool { return f.stored(layer) && !f.unit(t, layer).OnDemand })
}

// TestFetcherFaults: failures the retry policy covers (500, 429 with
// Retry-After, a dropped connection, a body cut short) cost the reader
// nothing: it gets the whole blob, resumed where it broke off.
func TestFetcherFaults(t *testing.T) {
	for _, fl := range []fault{status500, status429, dropped, truncated} {
		t.Run(string(fl), func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, dbtest.Open(t, "sqlite"))
			host, _, _ := upstream(t)
			const size = 1 << 20
			if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: string(fl), LayerSize: size}); err != nil {
				t.Fatal(err)
			}
			layer := regtest.LayerDescriptor(string(fl), 0, size, "").Digest
			p := &faulty{h: proxyTo(t, host), fault: fl, match: func(path string) bool { return strings.HasSuffix(path, layer.String()) }}
			lazySync(t, f, serve(t, p), "team/app", remote.PolicyOnDemand)
			p.mu.Lock()
			p.times = 2
			p.mu.Unlock()
			fe := f.fetcher(remote.FetcherOptions{Retry: remote.RetryPolicy{Attempts: 4, MinWait: 5 * time.Millisecond, MaxWait: 20 * time.Millisecond, MaxRetryAfter: 2 * time.Second}})
			data, err := f.readAll(ctx, fe, layer, size)
			if err != nil || digest.FromBytes(data) != layer {
				t.Fatalf("through %s faults: %d bytes, %v", fl, len(data), err)
			}
			if p.faults != 2 {
				t.Errorf("%d faults injected, want 2", p.faults)
			}
			waitFor(t, "the blob to be stored", func() bool { return f.stored(layer) })
		})
	}
}

// TestFetcherPolicies: a range of a blob not stored reads the right bytes;
// under streamed nothing is ever stored; a blob recorded only for another
// repository is fetched through that repository's remote only when it has
// no credentials.
func TestFetcherPolicies(t *testing.T) {
	ctx := context.Background()
	db := dbtest.Open(t, "sqlite")
	f := newFixture(t, db)
	host, url, reqs := upstream(t)
	const size = 256 << 10
	if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: "pol", LayerSize: size}); err != nil {
		t.Fatal(err)
	}
	layer := regtest.LayerDescriptor("pol", 0, size, "").Digest
	want, _ := io.ReadAll(regtest.LayerReader("pol", 0, size))
	lazySync(t, f, url, "team/app", remote.PolicyStreamed)
	fe := f.fetcher(remote.FetcherOptions{})

	rb, err := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: layer, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	if end, _ := rb.Seek(0, io.SeekEnd); end != size || reqs.get("GET blobs") != 1 {
		t.Errorf("seek to the end: %d, after %d blob GETs (the config's only)", end, reqs.get("GET blobs"))
	}
	rb.Seek(size-1000, io.SeekStart)
	tail, err := io.ReadAll(rb)
	rb.Close()
	if err != nil || !bytes.Equal(tail, want[size-1000:]) {
		t.Errorf("range of a blob not stored: %d bytes, %v", len(tail), err)
	}
	for range 2 {
		if data, err := f.readAll(ctx, fe, layer, size); err != nil || !bytes.Equal(data, want) {
			t.Fatalf("streamed: %d bytes, %v", len(data), err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if f.stored(layer) || !f.unit(t, layer).OnDemand || reqs.get("GET blobs") != 4 {
		t.Errorf("streamed blob stored %v, on-demand %v, %d blob GETs", f.stored(layer), f.unit(t, layer).OnDemand, reqs.get("GET blobs"))
	}

	// Another repository holds the blob, recorded by no remote of its own.
	other, err := f.repos.CreateRepository(ctx, "other", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repos.NewVersion(ctx, other.ID, repository.Change{Add: []int64{f.unit(t, layer).ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := fe.FetchBlob(ctx, other.ID, content.Blob{Digest: layer, Size: size}); err != nil {
		t.Errorf("through an anonymous remote of another repository: %v", err)
	}
	secret := remote.New("secret", url, "team/app")
	secret.Username, secret.Password = "someone", "hunter2"
	if err := remote.NewStore(db).Update(ctx, withID(secret, f, t)); err != nil {
		t.Fatal(err)
	}
	fe = f.fetcher(remote.FetcherOptions{}) // a fresh one: remotes are read again every 2s
	if _, err := fe.FetchBlob(ctx, other.ID, content.Blob{Digest: layer, Size: size}); !errors.Is(err, errdef.ErrBlobUnknown) {
		t.Errorf("through a remote with credentials, for a repository not synced through it: %v, want BLOB_UNKNOWN", err)
	}
	if _, err := fe.FetchBlob(ctx, f.repoID, content.Blob{Digest: layer, Size: size}); err != nil {
		t.Errorf("through a remote with credentials, for its own repository: %v", err)
	}
}

// withID gives r the ID (and name) of the fixture's only remote.
func withID(r *remote.Remote, f *fixture, t *testing.T) *remote.Remote {
	t.Helper()
	rs, _, err := remote.NewStore(f.repos.DB()).List(context.Background(), remote.Filter{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("remotes: %v %v", rs, err)
	}
	r.ID, r.Name, r.Policy = rs[0].ID, rs[0].Name, rs[0].Policy
	return r
}

// TestDeleteRemoteNeeded: a remote that is the only source of on-demand
// content cannot be deleted (409 naming the repositories); once the
// content is stored it can, until reclaim gives the bytes back.
func TestDeleteRemoteNeeded(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		host, url, _ := upstream(t)
		if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: "del", Layers: 2}); err != nil {
			t.Fatal(err)
		}
		r := lazySync(t, f, url, "team/app", remote.PolicyOnDemand)
		remotes := remote.NewStore(db)
		err := remotes.Delete(ctx, r.ID)
		if !errors.Is(err, errdef.ErrConflict) || !strings.Contains(err.Error(), `"mirror"`) {
			t.Fatalf("delete a remote on-demand content needs: %v, want a conflict naming repository mirror", err)
		}
		fe := f.fetcher(remote.FetcherOptions{})
		for i := range 2 {
			d := regtest.LayerDescriptor("del", i, 1024, "").Digest
			if _, err := f.readAll(ctx, fe, d, 1024); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the blob to be stored", func() bool { return !f.unit(t, d).OnDemand })
		}
		res, err := f.repos.ReclaimSpace(ctx, f.blobs, []string{f.repoID}, nil)
		if err != nil || res.Blobs != 3 { // two layers and the config
			t.Fatalf("reclaim: %+v %v", res, err)
		}
		if err := remotes.Delete(ctx, r.ID); !errors.Is(err, errdef.ErrConflict) {
			t.Fatalf("delete after reclaim: %v, want a conflict", err)
		}
		for i := range 2 {
			d := regtest.LayerDescriptor("del", i, 1024, "").Digest
			if _, err := f.readAll(ctx, fe, d, 1024); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the blob to be stored", func() bool { return !f.unit(t, d).OnDemand })
		}
		cfg := f.units(t, content.TypeBlob)
		for _, b := range cfg {
			if b.OnDemand {
				if _, err := f.readAll(ctx, fe, b.Digest, b.Size); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the config to be stored", func() bool { return !f.unit(t, b.Digest).OnDemand })
			}
		}
		if err := remotes.Delete(ctx, r.ID); err != nil {
			t.Fatalf("delete a remote nothing needs: %v", err)
		}
		if srcs, _ := f.repos.Sources(ctx, f.repoID, cfg[0].Digest); len(srcs) != 0 {
			t.Errorf("the deleted remote is still a source: %+v", srcs)
		}
	})
}

// TestOnDemandDistribution: against CNCF distribution (Debian's
// docker-registry), with and without basic auth, an on_demand sync records
// the layers and a pull fetches each through the remote's credentials.
func TestOnDemandDistribution(t *testing.T) {
	for _, auth := range []bool{false, true} {
		name := map[bool]string{false: "anonymous", true: "basic-auth"}[auth]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			opts := regtest.DistributionOptions{}
			if auth {
				opts.Users = map[string]string{"puller": "s3cret"}
			}
			up := regtest.StartDistributionWith(t, opts)
			repo, err := regtest.Repository(up.Host, "team/app")
			if err != nil {
				t.Fatal(err)
			}
			if auth {
				repo.Client = regtestClient("puller", "s3cret")
			}
			const size = 512 << 10
			if _, err := regtest.PushImageTo(ctx, repo, "v1", regtest.ImageOpts{Seed: "dist-" + name, Layers: 2, LayerSize: size}); err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, dbtest.Open(t, "sqlite"))
			r := remote.New("up", "http://"+up.Host, "team/app")
			r.Policy = remote.PolicyOnDemand
			if auth {
				r.Username, r.Password = "puller", "s3cret"
			}
			if err := remote.NewStore(f.repos.DB()).Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			f.sync(t, r, remote.SyncOptions{})
			fe := f.fetcher(remote.FetcherOptions{})
			for i := range 2 {
				d := regtest.LayerDescriptor("dist-"+name, i, size, "").Digest
				if f.stored(d) {
					t.Fatalf("layer %d downloaded by an on_demand sync", i)
				}
				data, err := f.readAll(ctx, fe, d, size)
				if err != nil || digest.FromBytes(data) != d {
					t.Fatalf("layer %d: %d bytes, %v", i, len(data), err)
				}
				waitFor(t, "the layer to be stored", func() bool { return f.stored(d) && !f.unit(t, d).OnDemand })
			}
		})
	}
}

// regtestClient is an oras-go client with basic credentials for any host.
func regtestClient(user, pass string) *orasauth.Client {
	return &orasauth.Client{Client: &http.Client{}, Cache: orasauth.NewCache(),
		Credential: func(context.Context, string) (orasauth.Credential, error) {
			return orasauth.Credential{Username: user, Password: pass}, nil
		}}
}
