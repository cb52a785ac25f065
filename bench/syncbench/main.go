// Command syncbench compares Mooring's first sync and resync of a
// 100-tag repository with two manifest lists against
// `skopeo sync --all` between two local CNCF distribution servers.
//
// It starts a source docker-registry, loads the data set, then for each run
// starts a fresh destination and times skopeo, and syncs into a fresh
// Mooring (SQLite and filesystem storage in a temporary directory, or the
// PostgreSQL of -dsn) timing the first sync and a resync. bench/sync.sh
// runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

func main() {
	runs := flag.Int("runs", 3, "timed runs of each tool")
	dsn := flag.String("dsn", "", "PostgreSQL DSN for Mooring's metadata (default: SQLite in the temporary directory)")
	tags := flag.Int("tags", bench.DefaultDataset.Tags, "tags besides the manifest lists")
	skipSkopeo := flag.Bool("no-skopeo", false, "time Mooring only")
	flag.Parse()
	log.SetFlags(0)

	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "mooring-syncbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	src, err := regtest.RunDistribution(filepath.Join(tmp, "src"))
	if err != nil {
		log.Fatal(err)
	}
	defer src.Stop()
	ds := bench.DefaultDataset
	ds.Tags = *tags
	start := time.Now()
	n, err := bench.Load(ctx, src.Host, "bench/app", ds)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("data set: %d tags (%d manifest lists), base layer %d MiB, %d own layers of %d KiB per image; loaded in %v\n",
		n, ds.Lists, ds.BaseSize>>20, ds.Unique, ds.UniqueSize>>10, time.Since(start).Round(time.Millisecond))

	var skopeo, first, resync []time.Duration
	for run := range *runs {
		if !*skipSkopeo {
			d, err := timeSkopeo(ctx, tmp, run, src.Host)
			if err != nil {
				log.Fatal(err)
			}
			skopeo = append(skopeo, d)
		}
		f, r, res, err := timeMooring(ctx, tmp, run, *dsn, src.Host)
		if err != nil {
			log.Fatal(err)
		}
		first, resync = append(first, f), append(resync, r)
		fmt.Printf("run %d: skopeo %v  mooring first %v (%d blobs, %d MiB)  resync %v (%d manifest GETs, version created: %v)\n",
			run+1, at(skopeo, run), f.Round(time.Millisecond), res.first.BlobsDownloaded, res.first.BytesDownloaded>>20,
			r.Round(time.Millisecond), res.again.ManifestRequests, res.again.Version != nil)
	}
	fmt.Printf("median: mooring first sync %v, resync %v", median(first), median(resync))
	if len(skopeo) > 0 {
		fmt.Printf(", skopeo sync %v; mooring/skopeo = %.2f", median(skopeo), median(first).Seconds()/median(skopeo).Seconds())
	}
	fmt.Println()
}

func at(ds []time.Duration, i int) any {
	if i < len(ds) {
		return ds[i].Round(time.Millisecond)
	}
	return "-"
}

// median is the median run, to the millisecond.
func median(ds []time.Duration) time.Duration {
	return bench.Median(ds).Round(time.Millisecond)
}

func timeSkopeo(ctx context.Context, tmp string, run int, srcHost string) (time.Duration, error) {
	dst, err := regtest.RunDistribution(filepath.Join(tmp, fmt.Sprintf("dst-%d", run)))
	if err != nil {
		return 0, err
	}
	defer dst.Stop()
	cmd := exec.CommandContext(ctx, "skopeo", "sync", "--all", "--src", "docker", "--dest", "docker",
		"--src-tls-verify=false", "--dest-tls-verify=false", srcHost+"/bench/app", dst.Host+"/mirror")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("skopeo sync: %w\n%s", err, out)
	}
	return time.Since(start), nil
}

type results struct{ first, again *remote.SyncResult }

func timeMooring(ctx context.Context, tmp string, run int, dsn, srcHost string) (time.Duration, time.Duration, results, error) {
	var res results
	dir := filepath.Join(tmp, fmt.Sprintf("mooring-%d", run))
	if dsn == "" {
		dsn = filepath.Join(dir, "mooring.db")
	}
	m, err := bench.OpenMooring(ctx, dsn, dir, fmt.Sprintf("bench-%d-%d", run, time.Now().UnixNano()))
	if err != nil {
		return 0, 0, res, err
	}
	defer m.DB.Close()
	r := remote.New("bench", "http://"+srcHost, "bench/app")
	start := time.Now()
	if res.first, err = m.Syncer.Sync(ctx, r, m.Repo.ID, remote.SyncOptions{}); err != nil {
		return 0, 0, res, err
	}
	first := time.Since(start)
	start = time.Now()
	if res.again, err = m.Syncer.Sync(ctx, r, m.Repo.ID, remote.SyncOptions{}); err != nil {
		return 0, 0, res, err
	}
	return first, time.Since(start), res, nil
}
