package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// skopeo runs `skopeo sync` from the upstream into a docker-registry of its
// own, the same destination each time, as a user mirroring with skopeo
// would.
type skopeo struct {
	dst   *regtest.Distribution
	args  []string
	tags  int           // tags synced
	scale float64       // times measured are multiplied by this
	last  time.Duration // the last run's time, measured
}

// newSkopeo starts the destination registry. Above max tags (max > 0),
// skopeo syncs only the first max of names, listed in a YAML source, and
// its times are scaled by len(names)/max.
func newSkopeo(dir, srcHost string, names []string, max int) (*skopeo, error) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		return nil, fmt.Errorf("skopeo not installed (apt-get install skopeo), or run with -skopeo=false: %w", err)
	}
	dst, err := regtest.RunDistribution(filepath.Join(dir, "dst"))
	if err != nil {
		return nil, err
	}
	s := &skopeo{dst: dst, tags: len(names), scale: 1}
	if max <= 0 || len(names) <= max {
		s.args = []string{"sync", "--all", "--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
			srcHost + "/" + upstreamRepo, dst.Host + "/mirror"}
		return s, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n    %s:\n", srcHost, upstreamRepo)
	for _, n := range names[:max] {
		fmt.Fprintf(&b, "    - %s\n", n)
	}
	file := filepath.Join(dir, "skopeo-sync.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		dst.Stop()
		return nil, err
	}
	s.tags, s.scale = max, float64(len(names))/float64(max)
	s.args = []string{"sync", "--all", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", file, dst.Host + "/mirror"}
	return s, nil
}

// run runs skopeo sync once and returns its time, scaled.
func (s *skopeo) run(ctx context.Context) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "skopeo", s.args...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("skopeo %s: %w\n%s", strings.Join(s.args, " "), err, tail(out))
	}
	s.last = time.Since(start)
	return time.Duration(float64(s.last) * s.scale), nil
}

// note says whether the last run's time was scaled, and from what.
func (s *skopeo) note() string {
	if s.scale == 1 {
		return ""
	}
	return fmt.Sprintf(" (extrapolated: %d tags took %v, x%.1f)", s.tags, s.last.Round(time.Millisecond), s.scale)
}

func (s *skopeo) stop() { s.dst.Stop() }

// tail is the end of a command's output, enough to see why it failed.
func tail(out []byte) []byte {
	if len(out) > 4096 {
		return out[len(out)-4096:]
	}
	return out
}
