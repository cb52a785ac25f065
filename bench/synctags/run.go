package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/bench"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// upstreamRepo is the repository name on the upstream docker-registry.
const upstreamRepo = "bench/app"

// runTags runs the three syncs of a repository of n tags and the tag
// list timings.
func runTags(ctx context.Context, cfg config, n int) error {
	dir := filepath.Join(cfg.tmp, fmt.Sprint(n))
	src, err := regtest.RunDistribution(filepath.Join(dir, "src"))
	if err != nil {
		return err
	}
	defer src.Stop()
	start := time.Now()
	mt, names, err := bench.LoadManyTags(ctx, src.Host, filepath.Join(dir, "src", "storage"), upstreamRepo, n, cfg.manifests)
	if err != nil {
		return err
	}
	manifests := cfg.manifests
	if manifests <= 0 || manifests > n {
		manifests = n
	}
	fmt.Fprintf(cfg.out, "\n== %d tags naming %d manifests (one config, two 1 KiB layers), written in %v\n",
		n, manifests, time.Since(start).Round(time.Millisecond))

	m, counter, drop, err := openMooring(ctx, cfg, dir)
	if err != nil {
		return err
	}
	defer drop()
	defer m.Close()
	repo, err := m.Repositories.CreateRepository(ctx, "mirror", "")
	if err != nil {
		return err
	}
	r := remote.New("bench", "http://"+src.Host, upstreamRepo)

	var sk *skopeo
	if cfg.skopeo {
		if sk, err = newSkopeo(dir, src.Host, names, cfg.skopeoMax); err != nil {
			return err
		}
		defer sk.stop()
	}
	moved := every(names, cfg.moved)
	phases := []struct {
		name   string
		before func() error
	}{
		{"first sync", nil},
		{"no-op resync", nil},
		{fmt.Sprintf("resync, %d tags moved", len(moved)), func() error { return mt.Move(moved, 1) }},
	}
	var skopeoFirst time.Duration
	for i, ph := range phases {
		profile := ""
		if cfg.memProfile != "" {
			profile = fmt.Sprintf("%s-%d-%d", cfg.memProfile, n, i+1)
		}
		if ph.before != nil {
			if err := ph.before(); err != nil {
				return err
			}
		}
		var sd time.Duration
		if sk != nil {
			if sd, err = sk.run(ctx); err != nil {
				return err
			}
		}
		st, err := timeSync(ctx, m, r, repo, counter, profile)
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		line := fmt.Sprintf("%-26s mooring %9v", ph.name, st.elapsed.Round(time.Millisecond))
		if sk != nil {
			if i == 0 {
				skopeoFirst = sd
			}
			line += fmt.Sprintf("   skopeo %9v%s   mooring/skopeo %.3f", sd.Round(time.Millisecond), sk.note(), st.elapsed.Seconds()/sd.Seconds())
			if i > 0 {
				line += fmt.Sprintf(" (%.3f of skopeo's first sync)", st.elapsed.Seconds()/skopeoFirst.Seconds())
			}
		}
		fmt.Fprintln(cfg.out, line)
		fmt.Fprintf(cfg.out, "    %d manifest GETs, version %s; peak RSS %d -> %d MiB (+%d MiB, live heap %d MiB); %d writes %s; tag report: first tag after %v, %s at 1s\n",
			st.res.ManifestRequests, versionOf(st.res), st.rss>>10, st.peak>>10, (st.peak-st.rss)>>10, st.heap>>20,
			st.writes, st.writeDetail, st.firstTag.Round(time.Millisecond), st.at1s(n))
	}
	return tagsList(ctx, cfg, m, repo, src.Host)
}

// every returns about fraction of names, evenly spread.
func every(names []string, fraction float64) []string {
	k := int(float64(len(names))*fraction + 0.5)
	if k <= 0 {
		return nil
	}
	step := len(names) / k
	out := make([]string, 0, k)
	for i := 0; i < len(names) && len(out) < k; i += step {
		out = append(out, names[i])
	}
	return out
}

func versionOf(res *remote.SyncResult) string {
	if res.Version == nil {
		return "unchanged"
	}
	return fmt.Sprint(res.Version.Number)
}

// openMooring opens Mooring in this process on a fresh database, with a
// statement counter on it.
func openMooring(ctx context.Context, cfg config, dir string) (*mooring.Mooring, *mooringdb.StatementCounter, func(), error) {
	dsn := filepath.Join(dir, "mooring", "mooring.db")
	if cfg.dsn != "" {
		dsn = cfg.dsn
	}
	dsn, drop, err := bench.FreshSchema(ctx, dsn, "synctags")
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := mooring.Open(ctx, dsn, filepath.Join(dir, "mooring", "blobs"), mooring.Options{})
	if err != nil {
		drop()
		return nil, nil, nil, err
	}
	counter := &mooringdb.StatementCounter{}
	m.DB.AddQueryHook(counter)
	return m, counter, drop, nil
}

// syncStats is what timeSync measured.
type syncStats struct {
	res         *remote.SyncResult
	elapsed     time.Duration
	rss, peak   int64  // KiB: before the sync, and the peak during it
	heap        uint64 // bytes: the peak live heap
	writes      int
	writeDetail string
	firstTag    time.Duration // when processing.tag first counted a tag
	tagsAt1s    int64         // processing.tag's count 1s in; -1 if it ended before
}

func (s syncStats) at1s(n int) string {
	if s.tagsAt1s < 0 {
		return "done"
	}
	return fmt.Sprintf("%d/%d", s.tagsAt1s, n)
}

// timeSync syncs r into repo, watching the progress reports.
func timeSync(ctx context.Context, m *mooring.Mooring, r *remote.Remote, repo *repository.Repository, counter *mooringdb.StatementCounter, profile string) (syncStats, error) {
	var st syncStats
	debug.FreeOSMemory() // RSS before: what the program holds, not garbage
	var err error
	if st.rss, err = bench.ProcStatus("self", "VmRSS"); err != nil {
		return st, err
	}
	if err := bench.ResetPeakRSS("self"); err != nil {
		return st, err
	}
	counter.Reset()
	p := &task.Progress{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	st.tagsAt1s = -1
	wg.Add(2)
	go func() {
		defer wg.Done()
		watchTags(p, start, stop, &st)
	}()
	var heapErr error
	go func() {
		defer wg.Done()
		st.heap, heapErr = peakHeap(profile, stop)
	}()
	st.res, err = m.Sync(ctx, r, repo, remote.SyncOptions{Progress: p})
	st.elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	if err == nil {
		err = heapErr
	}
	if err != nil {
		return st, err
	}
	st.peak, err = bench.ProcStatus("self", "VmHWM")
	st.writes = counter.Writes()
	c := counter.Counts()
	st.writeDetail = fmt.Sprintf("(%d INSERT, %d UPDATE, %d DELETE, %d BEGIN; %d SELECT)", c["INSERT"], c["UPDATE"], c["DELETE"], c["BEGIN"], c["SELECT"])
	return st, err
}

// watchTags polls the processing.tag report every 10ms until stop.
func watchTags(p *task.Progress, start time.Time, stop <-chan struct{}, st *syncStats) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var done int64
		for _, rep := range p.Reports() {
			if rep.Code == remote.CodeTags {
				done = rep.Done
			}
		}
		since := time.Since(start)
		if done > 0 && st.firstTag == 0 {
			st.firstTag = since
		}
		if since >= time.Second && st.tagsAt1s < 0 {
			st.tagsAt1s = done
		}
	}
}

// peakHeap watches the live heap every 100ms until stop and, when file is
// not empty, writes a heap profile there each time it is larger than
// before: at the end the file holds the profile at the sync's peak. It
// returns the peak live heap in bytes.
func peakHeap(file string, stop <-chan struct{}) (uint64, error) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return peak, nil
		case <-tick.C:
		}
		metrics.Read(sample)
		live := sample[0].Value.Uint64()
		if live <= peak {
			continue
		}
		peak = live
		if file == "" {
			continue
		}
		f, err := os.Create(file)
		if err != nil {
			return peak, err
		}
		err = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
		if err != nil {
			return peak, err
		}
	}
}
