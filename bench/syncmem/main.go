// Command syncmem shows that a sync's memory does not grow with blob size:
// for each size it pushes an image with one layer of that size to a local
// docker-registry, syncs it into a fresh Mooring, and prints the rise of
// the process's peak RSS (VmHWM in /proc/self/status, reset before each
// sync through /proc/self/clear_refs) during the sync. Linux only.
//
//	go run ./bench/syncmem -sizes 16MiB,256MiB,1GiB
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

func main() {
	sizes := flag.String("sizes", "16MiB,256MiB,1GiB", "layer sizes to sync, comma-separated (KiB, MiB, GiB suffixes)")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "mooring-syncmem")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src, err := regtest.RunDistribution(filepath.Join(tmp, "src"))
	if err != nil {
		log.Fatal(err)
	}
	defer src.Stop()

	for i, s := range strings.Split(*sizes, ",") {
		size, err := parseSize(s)
		if err != nil {
			log.Fatal(err)
		}
		repo := fmt.Sprintf("mem/layer%d", i)
		if _, err := regtest.PushImage(ctx, src.Host, repo, "big", regtest.ImageOpts{Layers: 1, LayerSize: size, Seed: s}); err != nil {
			log.Fatal(err)
		}
		dir := filepath.Join(tmp, fmt.Sprintf("mooring-%d", i))
		m, err := bench.OpenMooring(ctx, filepath.Join(dir, "mooring.db"), dir, "mem")
		if err != nil {
			log.Fatal(err)
		}

		runtime.GC()
		debug.FreeOSMemory()
		if err := bench.ResetPeakRSS("self"); err != nil {
			log.Fatalf("reset peak RSS: %v", err)
		}
		before := peakRSS()
		start := time.Now()
		res, err := m.Syncer.Sync(ctx, remote.New("mem", "http://"+src.Host, repo), m.Repo.ID, remote.SyncOptions{})
		if err != nil {
			log.Fatal(err)
		}
		took := time.Since(start)
		after := peakRSS()
		fmt.Printf("layer %-7s synced %5d MiB in %-8v peak RSS before %4d MiB, during sync %4d MiB: +%.1f MiB\n",
			s, res.BytesDownloaded>>20, took.Round(time.Millisecond), before>>10, after>>10, float64(after-before)/1024)
		m.DB.Close()
		os.RemoveAll(dir)
	}
}

func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// peakRSS returns this process's peak RSS (VmHWM) in KiB.
func peakRSS() int64 {
	n, err := bench.ProcStatus("self", "VmHWM")
	if err != nil {
		log.Fatal(err)
	}
	return n
}
