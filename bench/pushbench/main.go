// Command pushbench measures pushing one large layer to Mooring and to
// docker-registry (CNCF distribution) on the same machine: throughput of the
// blob upload as docker and podman make it (POST, one streamed PATCH, PUT
// ?digest=), and how far the peak RSS of the Mooring server process rises
// during the push (VmHWM in /proc/<pid>/status, reset through
// /proc/<pid>/clear_refs before each push). Linux only; run as the user
// that runs the servers.
//
//	go run ./bench/pushbench -size 256MiB -runs 3
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/internal/regtest"
)

func main() {
	sizeFlag := flag.String("size", "256MiB", "layer size (KiB, MiB, GiB suffixes)")
	runs := flag.Int("runs", 3, "pushes to each registry")
	flag.Parse()
	log.SetFlags(0)
	size, err := parseSize(*sizeFlag)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "mooring-pushbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// The server binary users run.
	bin := filepath.Join(tmp, "mooring-server")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/server").CombinedOutput(); err != nil {
		log.Fatalf("go build ./examples/server (run from the repository root): %v\n%s", err, out)
	}
	password := randomHex(12)
	content := bench.FreeAddr()
	srv := exec.Command(bin, "-data-dir", filepath.Join(tmp, "mooring"), "-api-addr", "", "-content-addr", content, "-workers", "0", "-log-level", "warn")
	srv.Env = append(os.Environ(), "MOORING_ADMIN_PASSWORD="+password)
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Process.Kill()
	pid := strconv.Itoa(srv.Process.Pid)
	if url := "http://" + content + "/v2/"; !bench.WaitHTTP(url, 30*time.Second) {
		log.Fatalf("%s did not answer within 30s", url)
	}

	dist, err := regtest.RunDistribution(filepath.Join(tmp, "distribution"))
	if err != nil {
		log.Fatal(err)
	}
	defer dist.Stop()

	fmt.Printf("pushing a %s layer, %d runs each (POST, streamed PATCH, PUT ?digest=)\n", *sizeFlag, *runs)
	var moorings, dists []float64
	for i := 0; i < *runs; i++ {
		seed := fmt.Sprintf("pushbench-%d-%s", i, randomHex(4))
		d := regtest.LayerDescriptor(seed, 0, size, "").Digest

		if err := bench.ResetPeakRSS(pid); err != nil {
			log.Fatalf("reset peak RSS of the server: %v", err)
		}
		before, _ := bench.ProcStatus(pid, "VmHWM")
		dur, err := pushBlob(ctx, "http://"+content, "bench/push", "admin", password, d, regtest.LayerReader(seed, 0, size))
		if err != nil {
			log.Fatalf("mooring: %v", err)
		}
		after, _ := bench.ProcStatus(pid, "VmHWM")
		m := float64(size) / dur.Seconds() / (1 << 20)
		moorings = append(moorings, m)

		seed2 := seed + "-dist"
		d2 := regtest.LayerDescriptor(seed2, 0, size, "").Digest
		dur2, err := pushBlob(ctx, "http://"+dist.Host, "bench/push", "", "", d2, regtest.LayerReader(seed2, 0, size))
		if err != nil {
			log.Fatalf("docker-registry: %v", err)
		}
		r := float64(size) / dur2.Seconds() / (1 << 20)
		dists = append(dists, r)
		fmt.Printf("run %d: mooring %6.1f MiB/s (%v)  docker-registry %6.1f MiB/s (%v)  mooring server peak RSS %d MiB -> %d MiB: +%.1f MiB\n",
			i+1, m, dur.Round(time.Millisecond), r, dur2.Round(time.Millisecond), before>>10, after>>10, float64(after-before)/1024)
	}
	mm, dm := bench.Median(moorings), bench.Median(dists)
	fmt.Printf("median: mooring %.1f MiB/s, docker-registry %.1f MiB/s; mooring/docker-registry = %.2f\n", mm, dm, mm/dm)
}

// pushBlob uploads r as blob d the way docker and podman do and returns how
// long it took from the POST to the 201.
func pushBlob(ctx context.Context, base, repo, user, pass string, d digest.Digest, r io.Reader) (time.Duration, error) {
	do := func(method, url string, body io.Reader, header ...string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			return nil, err
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	start := time.Now()
	resp, err := do("POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("POST: %s", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return 0, err
	}
	// Hide the length so that the body is streamed (chunked), as docker's is.
	resp, err = do("PATCH", loc.String(), io.MultiReader(r), "Content-Type", "application/octet-stream")
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("PATCH: %s", resp.Status)
	}
	if loc, err = resp.Location(); err != nil {
		return 0, err
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = do("PUT", loc.String(), http.NoBody)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("PUT: %s", resp.Status)
	}
	return time.Since(start), nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = n, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
