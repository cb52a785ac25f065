package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestSmall runs the benchmark on 30 tags, without skopeo: the figures are
// not checked, what they say happened is.
func TestSmall(t *testing.T) {
	if _, err := exec.LookPath(regtest.DistributionBinary); err != nil {
		if os.Getenv(dbtest.EnvRequire) != "" {
			t.Fatalf("%s is set but %s is not installed", dbtest.EnvRequire, regtest.DistributionBinary)
		}
		t.Skipf("%s not installed (apt-get install docker-registry)", regtest.DistributionBinary)
	}
	var out bytes.Buffer
	cfg := config{tags: []int{30}, moved: 0.1, page: 10, tmp: t.TempDir(), out: &out}
	if err := run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		"30 manifest GETs, version 1",
		"0 manifest GETs, version unchanged",
		"0 writes (0 INSERT, 0 UPDATE, 0 DELETE, 0 BEGIN",
		"resync, 3 tags moved",
		"3 manifest GETs, version 2",
		"mooring", "30 tags in 3 requests",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
