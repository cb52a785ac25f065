package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/server"
)

// TestTricklingBodiesAreCut: 50 clients that send a request body a byte
// at a time, slower than the minimum rate, to the REST API and to the
// registry, are cut off within a few body windows, while the server goes
// on answering others; an unauthenticated one gets its 401 before sending
// any body.
func TestTricklingBodiesAreCut(t *testing.T) {
	db := dbtest.Open(t, "sqlite")
	ctx := context.Background()
	if err := mooring.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := mooring.NewUsers(db).SetPassword(ctx, mooring.AdminUser, password); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, db, nil, server.Options{BodyWindow: 300 * time.Millisecond}, mooring.Options{})
	api, reg := httptest.NewServer(srv.API()), httptest.NewServer(srv.Content())
	defer api.Close()
	defer reg.Close()
	creds := "Basic " + base64.StdEncoding.EncodeToString([]byte(mooring.AdminUser+":"+password))

	// trickle sends the head of a request with a 1,000-byte body, then a
	// byte every 100 ms, and returns how long the server took to close
	// the connection or answer (at most 6 s, which means never).
	trickle := func(base, method, path, auth string) (time.Duration, string) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n", method, path)
		if auth != "" {
			fmt.Fprintf(conn, "Authorization: %s\r\n", auth)
		}
		fmt.Fprint(conn, "\r\n")
		answered := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(conn).ReadString('\n')
			answered <- strings.TrimSpace(line)
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case line := <-answered:
				return time.Since(start), line
			case <-tick.C:
				if time.Since(start) > 8*time.Second {
					return time.Since(start), "still open"
				}
				conn.Write([]byte("{"))
			}
		}
	}
	// Verify the credentials once, so that the 50 tricklers do not spend
	// 50 bcrypt checks before their bodies are even read.
	warm, _ := http.NewRequest("GET", api.URL+"/pulp/api/v3/repositories/", nil)
	warm.Header.Set("Authorization", creds)
	if resp, err := http.DefaultClient.Do(warm); err == nil {
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			base, path := api.URL, "/pulp/api/v3/repositories/"
			method := "POST"
			if i%2 == 1 {
				base, path, method = reg.URL, "/v2/app/blobs/uploads/?digest=sha256:"+strings.Repeat("a", 64), "POST"
			}
			took, line := trickle(base, method, path, creds)
			if took > 5*time.Second || !strings.Contains(line, "408") && line != "" {
				t.Errorf("client %d trickling to %s: %s after %v; want 408 or a closed connection within a few 300 ms windows", i, path, line, took)
			}
		})
	}
	// Others are served meanwhile.
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get(reg.URL + "/v2/_catalog")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a pull beside 50 tricklers: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	wg.Wait()
	if took, line := trickle(api.URL, "POST", "/pulp/api/v3/repositories/", ""); !strings.Contains(line, "401") || took > 2*time.Second {
		t.Errorf("an unauthenticated trickler: %q after %v; want 401 before its body", line, took)
	}
}
