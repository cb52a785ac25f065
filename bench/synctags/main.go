// Command synctags times Mooring's sync of an upstream with many tags
// (issue 13) beside skopeo sync of the same repository in the same run.
//
// For each count of -tags it starts a docker-registry (CNCF distribution)
// on a loopback port and writes a repository of that many tags into its
// storage (bench.LoadManyTags: each tag names an OCI manifest of its own;
// the manifests share one config and two small layers). Then, in turn:
//
//  1. skopeo sync into a fresh docker-registry, then Mooring's first sync
//     (in this process: SQLite and filesystem storage in a temporary
//     directory, or the PostgreSQL of -dsn);
//  2. both again with nothing changed upstream (the no-op resync);
//  3. -moved of the tags pointed at new manifests upstream, and both
//     again.
//
// For each Mooring sync it prints the time, how far this process's peak
// RSS (VmHWM, reset through /proc/self/clear_refs before the sync) rose
// above its RSS before it, the statements that wrote (INSERT, UPDATE,
// DELETE, BEGIN), and when the processing.tag progress report first
// counted a tag. Above -skopeo-max tags, skopeo syncs only the first
// -skopeo-max tags (a YAML source listing them) and its times are scaled
// to the whole repository, which the output says. Last, it times fetching
// the whole tag list, page by page (?n=-page) and in one request, from
// Mooring's registry (a distribution of the synced repository, served in
// this process) and from the upstream docker-registry.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/mooring-dev/mooring/bench"
)

func main() {
	tags := flag.String("tags", "10000,50000", "tag counts to run, comma-separated")
	manifests := flag.Int("manifests", 0, "distinct manifests the tags name in turn (0: one per tag)")
	moved := flag.Float64("moved", 0.01, "fraction of the tags moved before the third sync")
	dsn := flag.String("dsn", "", "PostgreSQL DSN for Mooring's metadata, in a schema of its own (default: SQLite in the temporary directory)")
	skopeo := flag.Bool("skopeo", true, "time skopeo sync too")
	skopeoMax := flag.Int("skopeo-max", 10000, "above this many tags, skopeo syncs this many and its times are scaled (0: all)")
	page := flag.Int("page", 100, "n of each tags/list page")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write the heap profile at the peak live heap of each Mooring sync to this file name plus -<tags>-<sync number>")
	flag.Parse()
	log.SetFlags(0)
	cfg := config{manifests: *manifests, moved: *moved, dsn: *dsn, skopeo: *skopeo, skopeoMax: *skopeoMax, page: *page,
		memProfile: *memProfile, out: os.Stdout}
	for _, s := range strings.Split(*tags, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("-tags: %q is not a positive count", s)
		}
		cfg.tags = append(cfg.tags, n)
	}
	tmp, err := os.MkdirTemp("", "mooring-synctags")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cfg.tmp = tmp
	if cpus := bench.NumCPU(); cpus > 0 {
		fmt.Printf("%d CPUs\n", cpus)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), cfg); err != nil {
		pprof.StopCPUProfile()
		log.Print(err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
}

// config is what a run does, from the flags.
type config struct {
	tags      []int
	manifests int
	moved     float64
	dsn       string
	skopeo    bool
	skopeoMax int
	page      int
	// memProfile, when set, names heap profiles taken at each sync's peak.
	memProfile string
	tmp        string
	out        io.Writer
}

func run(ctx context.Context, cfg config) error {
	for _, n := range cfg.tags {
		if err := runTags(ctx, cfg, n); err != nil {
			return fmt.Errorf("%d tags: %w", n, err)
		}
	}
	return nil
}
