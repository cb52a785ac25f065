package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/mooring-dev/mooring/content/errdef"
)

// Rate-limit manners. Registries that ration requests say so in response
// headers: Docker Hub's "ratelimit-limit: 100;w=21600" and
// "ratelimit-remaining: 76;w=21600" (a window of w seconds, no reset
// time), the IETF draft's RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (seconds until the quota renews), or the later draft's
// structured RateLimit ("default";r=50;t=30) and RateLimit-Policy
// ("default";q=100;w=60). Mooring reads them on every answer from a
// remote's registry and keeps, per registry host and account, how many
// requests are left and when the quota renews, shared by every sync and
// on-demand fetch of the process. Before each request it:
//
//   - spends one request of the quota it knows of, counting every request
//     in flight as spent (the upstream counts requests in the order they
//     reach it, not in the order they were sent);
//   - once a tenth of the quota or less remains, spaces the requests left
//     evenly across the time left until the reset, so that the quota is
//     not used up in a burst (never waiting longer than the caller's
//     patience for one request: a spacing beyond it is not worth keeping);
//   - when none remains, waits for the reset if that is within the
//     caller's patience, and otherwise fails the request without sending
//     it, with errdef.ErrTooManyRequests in an *errdef.RetryAfter.
//
// A 429 counts as "none remains" until its Retry-After has passed. The
// retry transport of oras-go (retry.Transport) still decides whether a
// 429 is retried, with Mooring's RetryPolicy in place of oras-go's
// DefaultPolicy (which reads only a Retry-After in seconds and clamps it
// to 3 s): after its Retry-After, when that is within the patience
// (RetryPolicy.MaxRetryAfter, which a sync sets from
// SyncOptions.RetryPatience); a longer one, or 429s outlasting the
// attempts, end the request with the 429. The quota gate sits below the
// retry transport, so each attempt passes the gate and every answer is
// read.
//
// Not every kind of request counts: Docker Hub counts manifest GETs only,
// answers blob requests without the headers and HEAD requests with the
// count unchanged. A kind (method and manifests, blobs, tags, referrers or
// other) is counted until its answers show otherwise: one without the
// headers, or one to a request sent after the count was learned showing
// the count unchanged. With the quota used up, a request of a kind not known yet
// waits for the quota to renew when that is within its patience; when it
// is not, one request at a time of such a kind may go to find out (a 429
// says it counts). Manifest GETs are always counted.

const (
	// maxQuotaWindow bounds the windows and resets believed: a longer one
	// is junk.
	maxQuotaWindow = 7 * 24 * time.Hour
	// resetMargin is waited beyond a reset, which servers round to whole
	// seconds.
	resetMargin = 250 * time.Millisecond
)

// quotaInfo is what one answer says of the upstream's quota.
type quotaInfo struct {
	remaining int
	limit     int           // 0: not said
	reset     time.Duration // until the quota renews; 0: not said
}

// parseQuota reads the rate-limit headers of an answer received at now;
// ok is false when there are none worth believing. Junk items are
// skipped.
func parseQuota(h http.Header, now time.Time) (q quotaInfo, ok bool) {
	remaining, rw, ok := quotaItems(h.Values("RateLimit-Remaining"), "", "w")
	limit, lw, _ := quotaItems(h.Values("RateLimit-Limit"), "", "w")
	if !ok {
		// The later draft: RateLimit: "policy";r=<remaining>;t=<reset>
		var t time.Duration
		if remaining, t, ok = quotaItems(h.Values("RateLimit"), "r", "t"); ok && t > 0 {
			rw = t
		}
		if limit == 0 {
			limit, lw, _ = quotaItems(h.Values("RateLimit-Policy"), "q", "w")
		}
	}
	if !ok {
		return q, false
	}
	q = quotaInfo{remaining: remaining, limit: limit}
	switch reset, rok := resetSeconds(h.Get("RateLimit-Reset"), now); {
	case rok:
		q.reset = reset
	case rw > 0:
		// A window without a reset (Docker Hub): at worst the whole window.
		q.reset = rw
	case lw > 0:
		q.reset = lw
	}
	return q, true
}

// quotaItems reads a comma-separated list of items such as "76;w=21600"
// or `"default";r=50;t=30` and returns the smallest count (the item's
// value, or its parameter named count when count is not empty) with that
// item's duration parameter (seconds, named dur; 0 if absent).
func quotaItems(values []string, count, dur string) (n int, d time.Duration, ok bool) {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			params := strings.Split(item, ";")
			c, has := -1, count == ""
			if has {
				c, has = smallInt(params[0])
			}
			var seconds time.Duration
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(p, "=")
				switch k = strings.ToLower(strings.TrimSpace(k)); {
				case k == count && count != "":
					c, has = smallInt(val)
				case k == dur:
					if s, sok := smallInt(val); sok && time.Duration(s)*time.Second <= maxQuotaWindow {
						seconds = time.Duration(s) * time.Second
					}
				}
			}
			if has && (!ok || c < n) {
				n, d, ok = c, seconds, true
			}
		}
	}
	return n, d, ok
}

// smallInt parses a non-negative integer below 2^31.
func smallInt(s string) (int, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	return int(n), err == nil && n >= 0
}

// resetSeconds reads RateLimit-Reset: seconds until the reset, or (as some
// servers send it, a number of seconds no window lasts) a Unix time.
func resetSeconds(v string, now time.Time) (time.Duration, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	d := time.Duration(n) * time.Second
	if n >= 1e9 && n < 1e11 {
		d = time.Unix(n, 0).Sub(now)
	}
	if d < 0 || d > maxQuotaWindow {
		return 0, false
	}
	return d, true
}

// kindState is what is known of a kind of request: whether the upstream
// counts it against the quota.
type kindState int

const (
	// kindUnknown: counted, to be safe. With the quota used up, one
	// request of the kind at a time may still go to find out.
	kindUnknown kindState = iota
	// kindCounted: an answer showed the count drop, or was a 429.
	kindCounted
	// kindUncounted: an answer carried the quota headers and showed the
	// count unchanged (Docker Hub's HEAD requests).
	kindUncounted
	// kindFree: answered without quota headers (Docker Hub's blobs).
	kindFree
)

// quota is what a registry host said of one account's quota, and the
// requests in flight since.
//
// The upstream counts requests in the order they reach it, which is not
// the order they were sent in. left is the lowest count it answered with
// (the latest point of its count known); every request in flight may be
// counted after that point, so left less the requests in flight is a
// remaining count that is never too high. An answer to a request sent
// after left was learned, with a count above it, means the quota renewed.
type quota struct {
	mu sync.Mutex
	// known: left is worth acting on.
	known bool
	// left is the count of the latest answer known.
	left  int
	limit int       // 0: unknown
	reset time.Time // zero: unknown
	// sent numbers counted requests; leftAt is sent when left was set.
	sent, leftAt uint64
	// inflight counts counted requests sent and not answered.
	inflight int
	// probing: a request of a kind not known to count is in flight
	// although the quota is used up.
	probing bool
	// next is when the next paced request may start.
	next  time.Time
	kinds map[string]kindState
	// wake is closed, and replaced, whenever an answer arrives.
	wake chan struct{}
}

// quotas holds a *quota per registry host and account, for the process.
var quotas sync.Map

func quotaFor(base, username string) *quota {
	v, _ := quotas.LoadOrStore(base+"\x00"+username, newQuota())
	return v.(*quota)
}

func newQuota() *quota {
	// Manifest GETs are what every rate limit counts (Docker Hub's
	// "pulls"): never probed.
	return &quota{kinds: map[string]kindState{"GET manifests": kindCounted}, wake: make(chan struct{})}
}

// low is how few remaining requests start pacing: a tenth of the limit.
func (q *quota) low() int {
	return max(q.limit/10, 1)
}

// ticket is an admitted request: its number, if counted.
type ticket struct {
	seq     uint64
	counted bool
	probe   bool
}

// admit waits until a request of kind may be sent, at most patience at a
// time. It fails, sending nothing, when the quota is used up until later
// than patience.
func (q *quota) admit(ctx context.Context, kind string, patience time.Duration) (ticket, error) {
	for {
		t, pace, blocked, wake, err := q.reserve(kind, time.Now(), patience)
		if err != nil {
			return t, err
		}
		if d := max(pace, blocked); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				q.finish(kind, t, nil, time.Now())
				return ticket{}, context.Cause(ctx)
			case <-wake:
				timer.Stop()
			case <-timer.C:
			}
		}
		if blocked == 0 {
			return t, nil
		}
	}
}

// reserve admits a request of kind, saying how long to pace it; or, when
// none is left, how long to wait before asking again (blocked; wake is
// closed when an answer may have changed that), or that the wait is
// beyond patience.
func (q *quota) reserve(kind string, now time.Time, patience time.Duration) (t ticket, pace, blocked time.Duration, wake <-chan struct{}, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if k := q.kinds[kind]; k == kindFree || k == kindUncounted {
		return ticket{}, 0, 0, nil, nil
	}
	if q.known && !q.reset.IsZero() && !now.Before(q.reset) {
		// The window is over: a fresh quota, if its size is known.
		q.known, q.left, q.leftAt, q.reset, q.next = q.limit > 0, q.limit, q.sent, time.Time{}, time.Time{}
	}
	remaining := q.left - q.inflight
	switch {
	case !q.known:
	case q.left <= 0 && q.kinds[kind] == kindUnknown && !q.reset.IsZero() && q.reset.Sub(now)+resetMargin <= patience:
		// None left and whether this kind counts is not known, but the
		// quota renews soon: wait for that rather than risk a 429.
		return ticket{}, 0, q.reset.Sub(now) + resetMargin, nil, nil
	case q.left <= 0 && q.kinds[kind] == kindUnknown && !q.probing:
		// None left for longer than this request may wait, and whether
		// this kind counts at all is not known: one request finds out,
		// the others wait for its answer.
		q.probing, t.probe = true, true
	case q.left <= 0 && q.kinds[kind] == kindUnknown:
		return ticket{}, 0, time.Second, q.wake, nil
	case q.left <= 0 && !q.reset.IsZero():
		wait := q.reset.Sub(now) + resetMargin
		if wait > patience {
			return ticket{}, 0, 0, nil, &errdef.RetryAfter{After: q.reset.Sub(now), Err: errdef.New(errdef.ErrTooManyRequests,
				"the upstream's request quota is used up until %s, longer than the %s this request may wait", q.reset.UTC().Format(time.RFC3339), patience)}
		}
		return ticket{}, 0, wait, nil, nil
	case remaining <= 0 && q.inflight > 0:
		// The requests in flight may use up what is left (or, when the
		// quota renews is not known, was left): wait for their answers.
		return ticket{}, 0, time.Second, q.wake, nil
	case remaining <= q.low() && !q.reset.IsZero():
		slot := now
		if q.next.After(now) {
			slot = q.next
		}
		if slot.Sub(now) <= patience && slot.Before(q.reset) {
			q.next = slot.Add(q.reset.Sub(slot) / time.Duration(max(remaining, 1)))
			pace = slot.Sub(now)
		}
	}
	q.sent++
	q.inflight++
	t.seq, t.counted = q.sent, true
	return t, pace, 0, nil, nil
}

// finish learns from the answer to request t of kind, received at now;
// resp is nil when there was none.
func (q *quota) finish(kind string, t ticket, resp *http.Response, now time.Time) {
	var info quotaInfo
	ok, tooMany := false, false
	if resp != nil {
		info, ok = parseQuota(resp.Header, now)
		if tooMany = resp.StatusCode == http.StatusTooManyRequests; tooMany {
			info.remaining, ok = 0, true
			if ra, has := retryAfter(resp.Header.Get("Retry-After")); has && ra <= maxQuotaWindow {
				info.reset = ra
			}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.counted {
		q.inflight--
		close(q.wake)
		q.wake = make(chan struct{})
	}
	if t.probe {
		q.probing = false
	}
	if resp == nil {
		return
	}
	if !ok {
		if resp.StatusCode < 300 && q.kinds[kind] == kindUnknown {
			q.kinds[kind] = kindFree
		}
		return
	}
	// A request sent after the count was learned was counted after it:
	// whether its answer shows the count lower, the same or higher says
	// whether the kind counts (or the quota renewed).
	after := t.counted && q.known && t.seq > q.leftAt
	switch {
	case tooMany || after && info.remaining < q.left:
		q.kinds[kind] = kindCounted
	case after && info.remaining == q.left:
		q.kinds[kind] = kindUncounted
	}
	if !q.known || tooMany || info.remaining < q.left || after || !t.counted && q.inflight == 0 {
		q.left, q.leftAt, q.known = info.remaining, q.sent, true
	}
	if info.limit > 0 {
		q.limit = info.limit
	}
	switch {
	case info.reset > 0:
		q.reset = now.Add(info.reset)
	case !q.reset.After(now):
		q.reset = time.Time{}
	}
}

// resumeAt is when the quota is expected to allow requests again; zero
// when it does now or nobody said.
func (q *quota) resumeAt(now time.Time) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.known && q.left-q.inflight <= 0 && q.reset.After(now) {
		return q.reset
	}
	return time.Time{}
}

// quotaTransport keeps one upstream client's requests within the quota
// of its registry host: below the retry transport, so that every attempt
// is admitted and every answer observed.
type quotaTransport struct {
	base     http.RoundTripper
	q        *quota
	host     string // only requests to the registry itself count
	patience time.Duration
	// manifests counts manifests and lists fetched (GET answered 200).
	manifests atomic.Int64
}

// newQuotaTransport returns the quota transport of a client of the
// registry at u for username, over base.
func newQuotaTransport(base http.RoundTripper, u *url.URL, username string, patience time.Duration) *quotaTransport {
	// Host maps docker.io to registry-1.docker.io, as oras-go's requests do.
	host := registry.Reference{Registry: u.Host}.Host()
	return &quotaTransport{base: base, q: quotaFor(u.Scheme+"://"+host, username), host: host, patience: patience}
}

func (t *quotaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		return t.base.RoundTrip(req) // a token service, a blob redirect
	}
	kind := requestKind(req)
	tk, err := t.q.admit(req.Context(), kind, t.patience)
	if err != nil {
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	t.q.finish(kind, tk, resp, time.Now())
	if err != nil {
		return nil, err
	}
	if req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/manifests/") {
		t.manifests.Add(1)
	}
	return resp, nil
}

// requestKind is the method and what a request asks for: "GET manifests",
// "HEAD manifests", "GET blobs", "GET tags", "GET referrers", or the
// method and "other".
func requestKind(req *http.Request) string {
	for _, k := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if strings.Contains(req.URL.Path, k) {
			return req.Method + " " + strings.Trim(k, "/")
		}
	}
	return req.Method + " other"
}

// withPatience returns s with its retry policy's MaxRetryAfter set to d,
// when d is positive: the longest a request waits for a rate limit.
func (s *Syncer) withPatience(d time.Duration) *Syncer {
	if d <= 0 {
		return s
	}
	c := *s
	c.Retry = s.Retry.norm()
	c.Retry.MaxRetryAfter = d
	return &c
}

// RateLimitError is the cause, in a *SyncError, of a sync stopped by its
// upstream's rate limit: a 429 whose Retry-After was longer than the
// sync's patience (SyncOptions.RetryPatience), 429s that outlasted the
// retries, or a request quota (RateLimit headers) used up until later
// than the patience. It says how far the sync got and when it may go on.
// errors.Is(err, errdef.ErrTooManyRequests) holds for it, and when Until
// is known an *errdef.RetryAfter in its chain carries the wait.
//
// Blobs downloaded before the stop are kept: syncing again after Until
// downloads only the others (manifests are fetched again, and count
// against the quota again).
type RateLimitError struct {
	// Upstream names the upstream repository.
	Upstream string
	// Until is when the upstream's quota renews, as its headers or
	// Retry-After said; zero when it did not say.
	Until time.Time
	// TagsDone of Tags are the tags whose manifest or list the sync had
	// when it stopped; Tags is 0 when it stopped before the tag list.
	TagsDone, Tags int
	// ManifestsFetched counts manifests and lists fetched before the stop.
	ManifestsFetched int
	// BlobsDone of Blobs are the blobs downloaded (and kept) of those the
	// sync had to download; Blobs is 0 when it stopped before downloading.
	BlobsDone, Blobs int

	after time.Duration // from the stop to Until
	cause error
}

// Error says when to sync again and how far the sync got.
func (e *RateLimitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rate limited by %s: ", e.Upstream)
	if e.Until.IsZero() {
		b.WriteString("it kept answering 429 Too Many Requests, and did not say until when; sync again later to continue")
	} else {
		fmt.Fprintf(&b, "its request quota is used up until %s (%s after the sync stopped); sync again after then to continue",
			e.Until.UTC().Format(time.RFC3339), e.after.Round(time.Second))
	}
	b.WriteString(". Done before stopping: ")
	if e.Tags == 0 {
		b.WriteString("the tag list was not read yet")
	} else {
		fmt.Fprintf(&b, "%d of %d tags, %d manifest", e.TagsDone, e.Tags, e.ManifestsFetched)
		if e.ManifestsFetched != 1 {
			b.WriteString("s")
		}
		b.WriteString(" fetched, ")
		if e.Blobs == 0 {
			b.WriteString("no blob downloaded yet")
		} else {
			fmt.Fprintf(&b, "%d of %d blobs downloaded (kept: the next sync downloads only the others)", e.BlobsDone, e.Blobs)
		}
	}
	return b.String()
}

// Unwrap returns errdef.ErrTooManyRequests (in an *errdef.RetryAfter when
// Until is known) and the upstream's error.
func (e *RateLimitError) Unwrap() []error {
	var kind error = errdef.New(errdef.ErrTooManyRequests, "rate limited by %s", e.Upstream)
	if !e.Until.IsZero() {
		kind = &errdef.RetryAfter{After: e.after, Err: kind}
	}
	return []error{kind, e.cause}
}

// rateLimited turns err, when an upstream's rate limit caused it, into a
// *SyncError with a *RateLimitError saying how far the sync got.
func (run *syncRun) rateLimited(err error) error {
	if !isRateLimited(err) {
		return err
	}
	now := time.Now()
	e := &RateLimitError{Upstream: run.r.UpstreamURL(), Until: run.up.limits.q.resumeAt(now),
		ManifestsFetched: int(run.up.limits.manifests.Load()), cause: err}
	if !e.Until.IsZero() {
		e.after = e.Until.Sub(now)
	}
	for _, r := range run.reports.p.Reports() {
		switch r.Code {
		case CodeTags:
			e.TagsDone, e.Tags = int(r.Done), int(r.Total)
		case CodeArtifacts:
			e.BlobsDone, e.Blobs = int(r.Done), int(r.Total)
		}
	}
	se := &SyncError{Op: "sync", Ref: run.r.Name}
	errors.As(err, &se)
	return &SyncError{Op: se.Op, Ref: se.Ref, Err: e}
}

// isRateLimited reports whether err is, or was caused by, a 429 or a used
// up quota.
func isRateLimited(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var er *errcode.ErrorResponse
	var se *statusErr
	return errors.Is(err, errdef.ErrTooManyRequests) ||
		errors.As(err, &er) && er.StatusCode == http.StatusTooManyRequests ||
		errors.As(err, &se) && se.status == http.StatusTooManyRequests
}
