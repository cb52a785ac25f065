package remote

import (
	"context"
	"io"
	"net/http"
	"sync"

	"golang.org/x/time/rate"
)

// Throttles are per remote and per process: every sync and on-demand fetch
// through one remote shares its limits.

type throttle struct {
	bandwidth *rate.Limiter // nil: no cap
	requests  *rate.Limiter // nil: no cap
}

var throttles sync.Map // remote ID -> *throttle

// throttleOf returns the limits of r, made or updated from its settings.
func throttleOf(r *Remote) *throttle {
	t := &throttle{}
	if r.MaxBandwidth > 0 {
		// A burst of a tenth of a second keeps the rate even; at least 32
		// KiB so that one read of a body is never refused.
		t.bandwidth = rate.NewLimiter(rate.Limit(r.MaxBandwidth), int(max(r.MaxBandwidth/10, 32<<10)))
	}
	if r.RateLimit > 0 {
		t.requests = rate.NewLimiter(rate.Limit(r.RateLimit), r.RateLimit)
	}
	if r.ID == "" {
		return t
	}
	if v, ok := throttles.Load(r.ID); ok {
		old := v.(*throttle)
		if same(old.bandwidth, t.bandwidth) && same(old.requests, t.requests) {
			return old
		}
	}
	throttles.Store(r.ID, t)
	return t
}

func same(a, b *rate.Limiter) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Limit() == b.Limit() && a.Burst() == b.Burst()
}

// throttleTransport waits for the request limit before each request and
// paces response bodies to the bandwidth limit.
type throttleTransport struct {
	base http.RoundTripper
	t    *throttle
}

func (tt throttleTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tt.t.requests != nil {
		if err := tt.t.requests.Wait(r.Context()); err != nil {
			return nil, err
		}
	}
	resp, err := tt.base.RoundTrip(r)
	if err == nil && tt.t.bandwidth != nil {
		resp.Body = &pacedBody{ReadCloser: resp.Body, l: tt.t.bandwidth, ctx: r.Context()}
	}
	return resp, err
}

// pacedBody reads no faster than its limiter allows.
type pacedBody struct {
	io.ReadCloser
	l   *rate.Limiter
	ctx context.Context
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if len(p) > b.l.Burst() {
		p = p[:b.l.Burst()]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.l.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
