package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/server"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// TestStatus: GET /pulp/api/v3/status/ answers without credentials, as
// Pulp's does, with versions, database and storage health and the task
// workers online.
func TestStatus(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		st := e.call("GET", "/pulp/api/v3/status/", nil, noAuth)
		if st.status != http.StatusOK {
			t.Fatalf("status without credentials: %d %s", st.status, st.body)
		}
		body := st.json(t)
		if body["database_connection"].(map[string]any)["connected"] != true || body["storage"].(map[string]any)["connected"] != true {
			t.Errorf("status says the database or storage is down: %s", st.body)
		}
		if !strings.Contains(string(st.body), `"component":"mooring"`) || !strings.Contains(string(st.body), `"component":"go"`) {
			t.Errorf("status lists no versions of mooring and go: %s", st.body)
		}
		if w := body["online_workers"].([]any); len(w) != 0 {
			t.Errorf("workers online before any runs: %v", w)
		}
		e.runner(t)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if w := e.call("GET", "/pulp/api/v3/status/", nil, noAuth).json(t)["online_workers"].([]any); len(w) == 1 {
				if w[0].(map[string]any)["last_heartbeat"] == "" {
					t.Errorf("worker without heartbeat: %v", w[0])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the running task worker never shows online")
			}
		}
		if r := e.call("GET", "/pulp/api/v3/status/?colour=blue", nil, noAuth); r.status != http.StatusBadRequest {
			t.Errorf("unknown parameter: %d", r.status)
		}
	})
}

// failingStat is blob storage that does not answer.
type failingStat struct{ storage.Driver }

func (failingStat) Stat(context.Context, digest.Digest) (storage.Info, error) {
	return storage.Info{}, errors.New("connection refused")
}

// TestHealthAndReadiness: /healthz and /readyz on both ports, without
// credentials; /readyz is 503 saying what does not answer, and the
// status endpoint says the same.
func TestHealthAndReadiness(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		for _, base := range []string{e.api.URL, e.content.URL} {
			for _, path := range []string{"/healthz", "/readyz"} {
				if code, body := get(t, base+path); code != http.StatusOK || body != "ok\n" {
					t.Errorf("%s%s: %d %q", base, path, code, body)
				}
			}
		}

		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		broken := newServer(t, db, failingStat{fs}, server.Options{}, mooring.Options{})
		for _, h := range []http.Handler{broken.API(), broken.Content()} {
			srv := httptest.NewServer(h)
			defer srv.Close()
			if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "storage: not answering\n" {
				t.Errorf("readyz with storage down: %d %q", code, body)
			}
			if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
				t.Errorf("healthz with storage down: %d", code)
			}
		}
		srv := httptest.NewServer(broken.API())
		defer srv.Close()
		if _, body := get(t, srv.URL+"/pulp/api/v3/status/"); !strings.Contains(body, `"storage":{"connected":false}`) || strings.Contains(body, "refused") {
			t.Errorf("status with storage down: %s", body)
		}
	})
}

// TestMetrics: /metrics on both ports counts every request by route and
// status, with many clients at once, and shows the task queue, workers,
// uploads and caches; every request gets an id, in a header and on every
// line it logs.
func TestMetrics(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		var logs syncBuffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e := newEnv(t, db)
		srv := newServer(t, db, e.blobs, server.Options{Logger: log}, mooring.Options{})
		api, content := httptest.NewServer(srv.API()), httptest.NewServer(srv.Content())
		defer api.Close()
		defer content.Close()

		const clients, each = 8, 25
		var wg sync.WaitGroup
		ids := make(chan string, clients*each*2)
		for range clients {
			wg.Go(func() {
				for range each {
					req, _ := http.NewRequest("GET", api.URL+"/pulp/api/v3/repositories/", nil)
					req.SetBasicAuth(mooring.AdminUser, password)
					for _, r := range []*http.Request{req, mustRequest(content.URL + "/v2/nothing/manifests/latest")} {
						resp, err := http.DefaultClient.Do(r)
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						ids <- resp.Header.Get(server.RequestIDHeader)
					}
				}
			})
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			if id == "" || seen[id] {
				t.Fatalf("request id %q missing or reused", id)
			}
			seen[id] = true
		}

		for _, base := range []string{api.URL, content.URL} {
			code, body := get(t, base+"/metrics")
			if code != http.StatusOK {
				t.Fatalf("%s/metrics: %d", base, code)
			}
			for _, want := range []string{
				fmt.Sprintf(`mooring_http_requests_total{code="200",method="GET",route="repositories-list",service="api"} %d`, clients*each),
				fmt.Sprintf(`mooring_http_requests_total{code="404",method="GET",route="manifests",service="content"} %d`, clients*each),
				fmt.Sprintf(`mooring_http_request_duration_seconds_count{method="GET",route="repositories-list",service="api"} %d`, clients*each),
				`mooring_tasks{state="waiting"} 0`,
				`mooring_registry_uploads_in_progress 0`,
				`mooring_task_workers_online 0`,
				`mooring_database_up 1`,
				`mooring_storage_up 1`,
				`mooring_registry_cache_misses_total{cache="manifests"}`,
				`mooring_http_response_bytes_total{route="repositories-list",service="api"}`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("%s/metrics lacks %q", base, want)
				}
			}
			if strings.Contains(body, `route="metrics"`) || strings.Contains(body, "healthz") {
				t.Errorf("%s/metrics counts its own scrapes or probes", base)
			}
		}

		// An id a proxy set is kept, and every line the request logs has it.
		req, _ := http.NewRequest("GET", api.URL+"/pulp/api/v3/repositories/?colour=blue", nil)
		req.SetBasicAuth(mooring.AdminUser, password)
		req.Header.Set(server.RequestIDHeader, "proxy-1234")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get(server.RequestIDHeader); got != "proxy-1234" {
			t.Errorf("request id %q, want the proxy's", got)
		}
		// Lines are written once the answer is sent: wait for the access
		// line.
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"status":400`) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		lines := 0
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, "colour=blue") || strings.Contains(line, `"status":400`) {
				lines++
				if !strings.Contains(line, `"request_id":"proxy-1234"`) {
					t.Errorf("log line without the request id: %s", line)
				}
			}
		}
		if lines == 0 {
			t.Errorf("the request logged nothing:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "/healthz") || strings.Contains(logs.String(), "/metrics") {
			t.Errorf("probes or scrapes were logged")
		}

		// Turned off, /metrics is not served.
		off := httptest.NewServer(newServer(t, db, e.blobs, server.Options{DisableMetrics: true}, mooring.Options{}).Content())
		defer off.Close()
		if code, _ := get(t, off.URL+"/metrics"); code != http.StatusNotFound {
			t.Errorf("/metrics with metrics off: %d", code)
		}
	})
}

func mustRequest(url string) *http.Request {
	r, err := http.NewRequest("GET", url, nil)
	if err != nil {
		panic(err)
	}
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPushWithoutCredentials: a push without credentials is told that
// credentials are needed, whether it asks with no Authorization at all or
// with the anonymous token the token endpoint hands out; wrong ones are
// told they are wrong.
func TestPushWithoutCredentials(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		post := func(auth string) string {
			req, _ := http.NewRequest("POST", e.content.URL+"/v2/team/app/blobs/uploads/", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("push with %q: %d %s", auth, resp.StatusCode, body)
			}
			return string(body)
		}
		if body := post(""); !strings.Contains(body, "credentials are needed to push team/app") {
			t.Errorf("push without credentials: %s", body)
		}
		code, body := get(t, e.content.URL+"/token/?service=mooring&scope=repository:team/app:pull,push")
		var tok struct {
			Token string `json:"token"`
		}
		if code != http.StatusOK || jsonUnmarshal([]byte(body), &tok) != nil || tok.Token == "" {
			t.Fatalf("anonymous token: %d %s", code, body)
		}
		if body := post("Bearer " + tok.Token); !strings.Contains(body, "credentials are needed to push team/app") {
			t.Errorf("push with an anonymous token: %s", body)
		}
		req, _ := http.NewRequest("GET", e.content.URL+"/token/?service=mooring&scope=repository:team/app:push", nil)
		req.SetBasicAuth("admin", "wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wrong, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(wrong), "Invalid username/password") || strings.Contains(string(wrong), "credentials are needed") {
			t.Errorf("token with a wrong password: %d %s", resp.StatusCode, wrong)
		}
	})
}
