package mooring_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

func openForMetrics(tb testing.TB) *mooring.Mooring {
	tb.Helper()
	blobs, err := filesystem.New(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	m, err := mooring.New(context.Background(), dbtest.Open(tb, "sqlite"), blobs, mooring.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestObserveRequest: requests are counted by service, route, method and
// code, a method no standard one is counted as OTHER, and the scrape
// reads the database's state.
func TestObserveRequest(t *testing.T) {
	m := openForMetrics(t)
	for range 3 {
		m.Metrics.ObserveRequest("content", "manifests", "GET", 200, 512, time.Millisecond)
	}
	m.Metrics.ObserveRequest("content", "manifests", "BREW", 405, 0, time.Millisecond)
	n, err := testutil.GatherAndCount(m.Metrics.Registry(), "mooring_http_requests_total")
	if err != nil || n != 2 {
		t.Fatalf("%d series, %v", n, err)
	}
	want := `
# HELP mooring_http_requests_total HTTP requests answered, by service (api, content), route, method and status code.
# TYPE mooring_http_requests_total counter
mooring_http_requests_total{code="200",method="GET",route="manifests",service="content"} 3
mooring_http_requests_total{code="405",method="OTHER",route="manifests",service="content"} 1
`
	if err := testutil.GatherAndCompare(m.Metrics.Registry(), strings.NewReader(want), "mooring_http_requests_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(m.Metrics.Registry(), strings.NewReader(`
# HELP mooring_database_up 1 when the database answers, else 0.
# TYPE mooring_database_up gauge
mooring_database_up 1
`), "mooring_database_up"); err != nil {
		t.Error(err)
	}
}

// BenchmarkObserveRequest is what metrics add to one request.
func BenchmarkObserveRequest(b *testing.B) {
	m := openForMetrics(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Metrics.ObserveRequest("content", "manifests", "GET", 200, 512, time.Millisecond)
		}
	})
}
