// Command loginflood measures what a password-guessing flood costs other
// users: it builds and starts the Mooring server (SQLite, a temporary
// directory), measures a logged-in client's REST request latency alone,
// then again while -c connections (from another loopback address, as
// another client) send wrong passwords as fast as they can, and prints
// both latency distributions and how the flood was answered (401, 429).
//
//	go run ./bench/loginflood [-c 64] [-d 10s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mooring-dev/mooring/bench"
)

func main() {
	conns := flag.Int("c", 64, "flooding connections")
	duration := flag.Duration("d", 10*time.Second, "duration of each measurement")
	flag.Parse()
	log.SetFlags(0)
	tmp, err := os.MkdirTemp("", "mooring-loginflood")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "mooring")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/server").CombinedOutput(); err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}
	apiAddr, contentAddr := bench.FreeAddr(), bench.FreeAddr()
	const password = "bench-password"
	srv := exec.Command(bin, "-data-dir", filepath.Join(tmp, "data"), "-api-addr", apiAddr, "-content-addr", contentAddr, "-workers", "0")
	srv.Env = append(os.Environ(), "MOORING_ADMIN_PASSWORD="+password, "MOORING_LOG_LEVEL=error")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	if !bench.WaitHTTP("http://"+apiAddr+"/pulp/api/v3/status/", 30*time.Second) && !bench.WaitHTTP("http://"+contentAddr+"/v2/_catalog", 30*time.Second) {
		log.Fatal("the server did not come up")
	}
	url := "http://" + apiAddr + "/pulp/api/v3/repositories/"

	fmt.Printf("%d CPUs; logged-in client: sequential GET %s\n", bench.NumCPU(), "/pulp/api/v3/repositories/")
	alone := measure(url, password, *duration, nil)
	report("alone", alone)
	var unauthorized, limited, other atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	flood := func() {
		// Another client: the flood comes from 127.0.0.2.
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext, MaxIdleConnsPerHost: 1}
		c := &http.Client{Transport: tr}
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.SetBasicAuth("admin", fmt.Sprintf("guess-%d", i))
			resp, err := c.Do(req)
			if err != nil {
				continue
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				unauthorized.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			default:
				other.Add(1)
			}
		}
	}
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(flood)
	}
	time.Sleep(time.Second)
	during := measure(url, password, *duration, nil)
	stop()
	wg.Wait()
	report(fmt.Sprintf("during a %d-connection flood", *conns), during)
	fmt.Printf("flood answered: %d x 401, %d x 429, %d other\n", unauthorized.Load(), limited.Load(), other.Load())
	fmt.Printf("p99 during/alone = %.2fx (goal: p99 during < 50 ms)\n", float64(pct(during, 99))/float64(pct(alone, 99)))
}

// measure sends sequential authenticated GETs for d and returns their
// latencies.
func measure(url, password string, d time.Duration, _ any) []time.Duration {
	var out []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		req, _ := http.NewRequest("GET", url, nil)
		req.SetBasicAuth("admin", password)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			log.Fatalf("the logged-in client got %s", resp.Status)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

func pct(xs []time.Duration, p int) time.Duration { return xs[min(len(xs)-1, len(xs)*p/100)] }

func report(name string, xs []time.Duration) {
	fmt.Printf("  %-32s %6d requests  p50 %8v  p99 %8v  max %8v\n", name, len(xs), pct(xs, 50).Round(10*time.Microsecond),
		pct(xs, 99).Round(10*time.Microsecond), xs[len(xs)-1].Round(10*time.Microsecond))
}
