package remote_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/task"
)

// fault is what the faulty proxy does to a response.
type fault string

const (
	status500 fault = "500"
	status429 fault = "429"
	dropped   fault = "dropped"   // connection closed before any response
	truncated fault = "truncated" // full Content-Length, half the body
	corrupt   fault = "corrupt"   // right length and headers, one byte flipped
)

// faulty sits in front of a registry and spoils the first times GETs of
// each path matching match, then lets requests through.
type faulty struct {
	h     http.Handler
	fault fault
	match func(path string) bool
	times int

	mu     sync.Mutex
	seen   map[string]int
	when   map[string][]time.Time
	faults int
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.seen == nil {
		f.seen, f.when = map[string]int{}, map[string][]time.Time{}
	}
	f.when[r.URL.Path] = append(f.when[r.URL.Path], time.Now())
	spoil := r.Method == http.MethodGet && f.match(r.URL.Path) && f.seen[r.URL.Path] < f.times
	if spoil {
		f.seen[r.URL.Path]++
		f.faults++
	}
	f.mu.Unlock()
	if !spoil {
		f.h.ServeHTTP(w, r)
		return
	}
	switch f.fault {
	case status500:
		http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, http.StatusInternalServerError)
	case status429:
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
	case dropped:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case truncated, corrupt:
		rec := &recorder{header: http.Header{}}
		f.h.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		if rec.status != 0 && rec.status != http.StatusOK || len(body) < 2 {
			copyResponse(w, rec)
			return
		}
		if f.fault == corrupt {
			body[len(body)/2] ^= 0xff
			copyResponse(w, rec)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		writeHead(buf, rec, len(body))
		buf.Write(body[:len(body)/2])
		buf.Flush()
	}
}

func copyResponse(w http.ResponseWriter, rec *recorder) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.status != 0 {
		w.WriteHeader(rec.status)
	}
	w.Write(rec.body.Bytes())
}

func writeHead(buf *bufio.ReadWriter, rec *recorder, length int) {
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\n")
	for k, v := range rec.header {
		if k != "Content-Length" {
			fmt.Fprintf(buf, "%s: %s\r\n", k, strings.Join(v, ","))
		}
	}
	fmt.Fprintf(buf, "Content-Length: %d\r\nConnection: close\r\n\r\n", length)
}

func TestSyncFaults(t *testing.T) {
	anything := func(path string) bool { return strings.HasPrefix(path, "/v2/team/") }
	for _, fl := range []fault{status500, dropped, truncated, corrupt} {
		t.Run(string(fl), func(t *testing.T) {
			f := newFixture(t, dbtest.Open(t, "sqlite"))
			host, _, _ := upstream(t)
			want := pushSample(t, host, "team/app")
			// Every tag list, manifest and blob fails twice before it works.
			match := anything
			if fl == corrupt {
				// A tag list has no digest: corruption in it cannot be
				// told (TLS guards it in real life).
				match = func(path string) bool { return anything(path) && !strings.HasSuffix(path, "/tags/list") }
			}
			p := &faulty{h: proxyTo(t, host), fault: fl, match: match, times: 2}
			res := f.sync(t, remote.New("up", serve(t, p), "team/app"), remote.SyncOptions{})
			if res.Version == nil || f.tags(t)["multi"] != want["multi"].Digest {
				t.Fatalf("sync through %s faults: version %v, tags %v", fl, res.Version, f.tags(t))
			}
			if p.faults < 20 {
				t.Errorf("only %d faults injected", p.faults)
			}
			// Every stored blob is the upstream's, unspoilt.
			f.checkBlob(t, regtest.LayerDescriptor("oci", 2, 1024, "").Digest, regtest.LayerReader("oci", 2, 1024))
			for _, b := range f.units(t, content.TypeBlob) {
				if info, err := f.blobs.Stat(context.Background(), b.Digest); err != nil || info.Size != b.Size {
					t.Errorf("blob %s: %v, %+v", b.Digest, err, info)
				}
			}
		})
	}
}

func TestSyncRetryAfter(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, _, _ := upstream(t)
	if _, err := regtest.PushImage(context.Background(), host, "team/app", "v1", regtest.ImageOpts{Seed: "ra"}); err != nil {
		t.Fatal(err)
	}
	p := &faulty{h: proxyTo(t, host), fault: status429, match: func(path string) bool { return strings.Contains(path, "/manifests/") }, times: 1}
	f.sync(t, remote.New("up", serve(t, p), "team/app"), remote.SyncOptions{})
	times := p.when["/v2/team/app/manifests/v1"]
	if len(times) != 2 {
		t.Fatalf("manifest requested %d times, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
}

// TestSyncResume: a sync that keeps failing on one blob fails naming it,
// creates no version, keeps the blobs it verified, and the next sync
// downloads only the missing one.
func TestSyncResume(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		host, _, _ := upstream(t)
		pushSample(t, host, "team/app")
		bad := regtest.LayerDescriptor("multi-arm64", 1, 1024, "").Digest
		p := &faulty{h: proxyTo(t, host), fault: corrupt, match: func(path string) bool { return strings.HasSuffix(path, bad.String()) }, times: 1000}
		r := remote.New("up", serve(t, p), "team/app")
		r.DownloadConcurrency = 1 // so that the other blobs finish first
		progress := &task.Progress{}
		_, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{Progress: progress})
		var se *remote.SyncError
		if !errors.As(err, &se) || se.Ref != bad.String() || se.Op != "download blob" {
			t.Fatalf("err = %v, want a SyncError downloading %s", err, bad)
		}
		if !strings.Contains(err.Error(), bad.String()) || !strings.Contains(err.Error(), "digest mismatch") {
			t.Errorf("message %q should name the blob and the cause", err)
		}
		reports := progress.Reports()
		if last := reports[len(reports)-1]; last.Code != remote.CodeArtifacts || last.State != task.StateFailed {
			t.Errorf("last report %+v, want downloading.artifacts failed", last)
		}
		if p.seen["/v2/team/app/blobs/"+bad.String()] != fastRetry.Attempts {
			t.Errorf("corrupt blob fetched %d times, want %d", p.seen["/v2/team/app/blobs/"+bad.String()], fastRetry.Attempts)
		}
		if f.latest(t) != 0 {
			t.Fatalf("failed sync made version %d", f.latest(t))
		}
		if _, err := f.blobs.Stat(ctx, bad); err == nil {
			t.Fatal("the corrupt blob was stored")
		}
		p.mu.Lock()
		p.times = 0
		p.mu.Unlock()
		res := f.sync(t, r, remote.SyncOptions{})
		if res.Version == nil || res.Version.Number != 1 {
			t.Errorf("resumed sync made version %v", res.Version)
		}
		if res.BlobsDownloaded != 1 {
			t.Errorf("resumed sync downloaded %d blobs, want only the missing one", res.BlobsDownloaded)
		}
	})
}

// TestSyncCancel: cancelling stops the sync promptly with context.Canceled
// and no version; the next sync completes.
func TestSyncCancel(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, _, _ := upstream(t)
	pushSample(t, host, "team/app")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backend := proxyTo(t, host)
	var hang atomic.Bool
	hang.Store(true)
	var once sync.Once
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() && strings.Contains(r.URL.Path, "/blobs/") {
			once.Do(cancel)
			<-r.Context().Done() // hang until the client gives up
			return
		}
		backend.ServeHTTP(w, r)
	}))
	r := remote.New("up", url, "team/app")
	progress := &task.Progress{}
	_, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{Progress: progress})
	if _, ok := err.(*remote.SyncError); !ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %#v, want a *SyncError wrapping context.Canceled", err)
	}
	for _, rep := range progress.Reports() {
		if rep.State == task.StateRunning || rep.Code == remote.CodeArtifacts && rep.State != task.StateCanceled {
			t.Errorf("report %+v after cancel, want the downloads canceled and none running", rep)
		}
	}
	if f.latest(t) != 0 {
		t.Fatalf("cancelled sync made version %d", f.latest(t))
	}
	hang.Store(false)
	if res := f.sync(t, r, remote.SyncOptions{}); res.Version == nil {
		t.Error("sync after cancel made no version")
	}
}

// TestSyncGivesUp: when retries run out the error names the tag and the
// upstream's error, and no version is made.
func TestSyncGivesUp(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, _, _ := upstream(t)
	pushSample(t, host, "team/app")
	p := &faulty{h: proxyTo(t, host), fault: status500, match: func(path string) bool { return strings.HasSuffix(path, "/manifests/oci") }, times: 1000}
	_, err := f.syncer.Sync(context.Background(), remote.New("up", serve(t, p), "team/app"), f.repoID, remote.SyncOptions{})
	var se *remote.SyncError
	if !errors.As(err, &se) || se.Ref != "oci" || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("err = %v, want a SyncError naming tag oci and the upstream's 500", err)
	}
	if got := p.seen["/v2/team/app/manifests/oci"]; got != fastRetry.Attempts {
		t.Errorf("manifest tried %d times, want %d", got, fastRetry.Attempts)
	}
	if f.latest(t) != 0 {
		t.Errorf("failed sync made version %d", f.latest(t))
	}
}
