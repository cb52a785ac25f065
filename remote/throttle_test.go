package remote_test

import (
	"context"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// TestMaxBandwidth: a remote capped at 1 MiB/s takes at least about 3 s
// to download 3 MiB of layers, whatever the loopback could do; its
// request rate cap is honoured too.
func TestMaxBandwidth(t *testing.T) {
	if testing.Short() {
		t.Skip("takes seconds by design")
	}
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	ctx := context.Background()
	host := regtest.StartInProcess(t)
	if _, err := regtest.PushImage(ctx, host, "library/big", "1.0", regtest.ImageOpts{Layers: 3, LayerSize: 1 << 20, Seed: "throttle"}); err != nil {
		t.Fatal(err)
	}
	r := remote.New("capped", "http://"+host, "library/big")
	r.MaxBandwidth = 1 << 20
	start := time.Now()
	res := f.sync(t, r, remote.SyncOptions{})
	took := time.Since(start)
	if res.BytesDownloaded < 3<<20 {
		t.Fatalf("downloaded %d bytes, want at least 3 MiB", res.BytesDownloaded)
	}
	// 3 MiB at 1 MiB/s, less the 100 KiB burst: at least 2.5 s.
	if took < 2500*time.Millisecond {
		t.Errorf("3 MiB through a 1 MiB/s remote took %v", took)
	}

	f2 := newFixture(t, dbtest.Open(t, "sqlite"))
	slow := remote.New("slow", "http://"+host, "library/big")
	slow.RateLimit = 2
	start = time.Now()
	f2.sync(t, slow, remote.SyncOptions{})
	// Tag list, manifest, config and 3 layers: at least 6 requests, a
	// burst of 2 and then 2 a second.
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("a sync of 6 or more requests at 2 requests/s took %v", took)
	}
	if err := slow.Validate(); err != nil {
		t.Fatal(err)
	}
	slow.RateLimit = -1
	if err := slow.Validate(); err == nil {
		t.Error("a negative rate_limit validated")
	}
}

// BenchmarkMaxBandwidth syncs 60 MiB of layers (DownloadConcurrency 10)
// through a remote capped at 1 MiB/s, about a minute, and reports the
// rate achieved as a share of the cap: the issue asks for ±10% over a
// minute. go test ./remote -run XXX -bench MaxBandwidth -benchtime 1x
func BenchmarkMaxBandwidth(b *testing.B) {
	ctx := context.Background()
	host := regtest.StartInProcess(b)
	if _, err := regtest.PushImage(ctx, host, "library/minute", "1.0", regtest.ImageOpts{Layers: 30, LayerSize: 2 << 20, Seed: "minute"}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		f := newFixture(b, dbtest.Open(b, "sqlite"))
		r := remote.New("minute", "http://"+host, "library/minute")
		r.MaxBandwidth = 1 << 20
		start := time.Now()
		res := f.sync(b, r, remote.SyncOptions{})
		took := time.Since(start)
		rate := float64(res.BytesDownloaded) / took.Seconds()
		b.ReportMetric(rate/float64(r.MaxBandwidth), "rate/cap")
		b.ReportMetric(took.Seconds(), "s")
	}
}
