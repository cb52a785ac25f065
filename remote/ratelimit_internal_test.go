package remote

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
)

func TestParseQuota(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name   string
		header map[string]string
		want   quotaInfo
		ok     bool
	}{
		{"Docker Hub", map[string]string{"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600", "docker-ratelimit-source": "203.0.113.7"},
			quotaInfo{remaining: 76, limit: 100, reset: 6 * time.Hour}, true},
		{"IETF draft", map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "3", "RateLimit-Reset": "7"},
			quotaInfo{remaining: 3, limit: 10, reset: 7 * time.Second}, true},
		{"IETF draft, quota policies", map[string]string{"RateLimit-Limit": "10, 10;w=1, 1000;w=3600", "RateLimit-Remaining": "9", "RateLimit-Reset": "1"},
			quotaInfo{remaining: 9, limit: 10, reset: time.Second}, true},
		{"reset as a Unix time", map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "1800000030"},
			quotaInfo{remaining: 0, reset: 30 * time.Second}, true},
		{"structured draft", map[string]string{"RateLimit": `"default";r=50;t=30`, "RateLimit-Policy": `"default";q=100;w=60`},
			quotaInfo{remaining: 50, limit: 100, reset: 30 * time.Second}, true},
		{"structured draft, two policies", map[string]string{"RateLimit": `"burst";r=5;t=1, "daily";r=900;t=3600`},
			quotaInfo{remaining: 5, reset: time.Second}, true},
		{"remaining only", map[string]string{"RateLimit-Remaining": "12"}, quotaInfo{remaining: 12}, true},
		{"junk reset ignored", map[string]string{"RateLimit-Remaining": "2;w=60", "RateLimit-Reset": "soon"},
			quotaInfo{remaining: 2, reset: time.Minute}, true},
		{"junk item skipped", map[string]string{"RateLimit-Remaining": "many, 4"}, quotaInfo{remaining: 4}, true},
		{"absurd window ignored", map[string]string{"RateLimit-Remaining": "4;w=99999999999"}, quotaInfo{remaining: 4}, true},
		{"reset in the past ignored", map[string]string{"RateLimit-Remaining": "4", "RateLimit-Reset": "1700000000"}, quotaInfo{remaining: 4}, true},
		{"negative", map[string]string{"RateLimit-Remaining": "-1"}, quotaInfo{}, false},
		{"junk", map[string]string{"RateLimit-Remaining": "lots", "RateLimit-Limit": "100"}, quotaInfo{}, false},
		{"none", map[string]string{"X-Other": "1"}, quotaInfo{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.header {
				h.Set(k, v)
			}
			got, ok := parseQuota(h, now)
			if ok != c.ok || ok && got != c.want {
				t.Errorf("parseQuota(%v) = %+v, %v; want %+v, %v", c.header, got, ok, c.want, c.ok)
			}
		})
	}
}

func FuzzParseQuota(f *testing.F) {
	for _, s := range []string{"76;w=21600", "3", `"default";r=50;t=30`, "10, 10;w=1", "-1", ";;;=,", "9223372036854775807"} {
		f.Add(s, s, "7")
	}
	f.Fuzz(func(t *testing.T, remaining, limit, reset string) {
		h := http.Header{"Ratelimit-Remaining": {remaining}, "Ratelimit-Limit": {limit}, "Ratelimit-Reset": {reset}, "Ratelimit": {remaining}}
		q, ok := parseQuota(h, time.Now())
		if ok && (q.remaining < 0 || q.limit < 0 || q.reset < 0 || q.reset > maxQuotaWindow) {
			t.Errorf("parseQuota gave %+v", q)
		}
	})
}

// answer is a response carrying quota headers.
func answer(status int, kv ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return &http.Response{StatusCode: status, Header: h}
}

// TestQuotaGate follows the gate through a quota's life: spending it,
// pacing the last tenth across the time left, refusing beyond the
// patience once it is used up, and renewing after the reset.
func TestQuotaGate(t *testing.T) {
	const kind = "GET manifests"
	q := newQuota()
	now := time.Now()
	patience := time.Minute
	reserve := func(at time.Time) (ticket, time.Duration, time.Duration, error) {
		t.Helper()
		tk, pace, blocked, _, err := q.reserve(kind, at, patience)
		return tk, pace, blocked, err
	}

	// Unknown: the first request goes; its answer says 4 of 30 are left
	// for 30 s. The next one's says 3: requests of this kind count. That
	// is within the last tenth: the three left are spaced 10 s apart.
	for _, left := range []string{"4", "3"} {
		tk, pace, blocked, err := reserve(now)
		if err != nil || pace != 0 || blocked != 0 {
			t.Fatalf("request with %s left: pace %v, blocked %v, %v", left, pace, blocked, err)
		}
		q.finish(kind, tk, answer(200, "RateLimit-Limit", "30", "RateLimit-Remaining", left, "RateLimit-Reset", "30"), now)
	}
	var paces []time.Duration
	var tickets []ticket
	for range 3 {
		tk, pace, blocked, err := reserve(now)
		if err != nil || blocked != 0 {
			t.Fatalf("request within the quota: blocked %v, %v", blocked, err)
		}
		paces, tickets = append(paces, pace), append(tickets, tk)
	}
	if paces[0] != 0 || paces[1] != 10*time.Second || paces[2] != 20*time.Second {
		t.Errorf("the last 3 requests of 30 s paced %v, want 0s, 10s, 20s", paces)
	}
	// None left while they are in flight: the next waits for their
	// answers. Once they say none is left, with the reset 30 s away,
	// beyond a patience of 20 s, it is refused.
	patience = 20 * time.Second
	if tk, _, blocked, wake, err := q.reserve(kind, now, patience); err != nil || tk.counted || blocked == 0 || wake == nil {
		t.Errorf("a request while the last are in flight: %+v, blocked %v, %v; want to wait for their answers", tk, blocked, err)
	}
	for i, tk := range tickets {
		q.finish(kind, tk, answer(200, "RateLimit-Limit", "30", "RateLimit-Remaining", []string{"1", "0", "2"}[i], "RateLimit-Reset", "30"), now)
	}
	var ra *errdef.RetryAfter
	if _, _, _, err := reserve(now); !errors.As(err, &ra) || ra.After != 30*time.Second {
		t.Errorf("a request over the quota: %v, want a RetryAfter of 30s", err)
	}
	if got := q.resumeAt(now); !got.Equal(now.Add(30 * time.Second)) {
		t.Errorf("resume at %v, want %v", got, now.Add(30*time.Second))
	}
	// Within a patience of a minute the request waits for the reset.
	patience = time.Minute
	if _, _, blocked, err := reserve(now); err != nil || blocked != 30*time.Second+resetMargin {
		t.Errorf("a patient request over the quota: blocked %v, %v", blocked, err)
	}
	// After the reset the quota is the limit again.
	later := now.Add(31 * time.Second)
	if _, pace, blocked, err := reserve(later); err != nil || pace != 0 || blocked != 0 {
		t.Errorf("after the reset: pace %v, blocked %v, %v", pace, blocked, err)
	}
	if got := q.resumeAt(later); !got.IsZero() {
		t.Errorf("resume at %v after the reset", got)
	}
}

// TestQuotaKinds: as on Docker Hub, requests whose answers carry no quota
// headers (blob downloads) or show the count unchanged (HEAD requests)
// are not held back by a used-up quota; a kind not known yet is tried one
// request at a time.
func TestQuotaKinds(t *testing.T) {
	q := newQuota()
	now := time.Now()
	hub := func(left string) *http.Response {
		return answer(200, "ratelimit-limit", "100;w=21600", "ratelimit-remaining", left+";w=21600")
	}
	tk, _, _, _, _ := q.reserve("GET blobs", now, time.Second)
	q.finish("GET blobs", tk, answer(200), now)
	for _, left := range []string{"1", "0"} {
		tk, _, _, _, _ = q.reserve("GET manifests", now, time.Second)
		q.finish("GET manifests", tk, hub(left), now)
	}
	if _, _, _, _, err := q.reserve("GET manifests", now, time.Second); !errors.Is(err, errdef.ErrTooManyRequests) {
		t.Errorf("a manifest request with the quota used up: %v", err)
	}
	if _, _, blocked, _, err := q.reserve("GET blobs", now, time.Second); err != nil || blocked != 0 {
		t.Errorf("a blob request, not counted by the quota: blocked %v, %v", blocked, err)
	}
	probe, _, blocked, _, err := q.reserve("HEAD manifests", now, time.Second)
	if err != nil || blocked != 0 || !probe.probe {
		t.Fatalf("the first HEAD request with the quota used up: %+v, blocked %v, %v; want a probe", probe, blocked, err)
	}
	if tk, _, blocked, wake, err := q.reserve("HEAD manifests", now, time.Second); err != nil || tk.counted || blocked == 0 || wake == nil {
		t.Errorf("a second HEAD request while the first finds out: %+v, blocked %v, %v; want to wait for its answer", tk, blocked, err)
	}
	q.finish("HEAD manifests", probe, hub("0"), now)
	for range 3 {
		if tk, _, blocked, _, err := q.reserve("HEAD manifests", now, time.Second); err != nil || blocked != 0 || tk.counted {
			t.Errorf("a HEAD request, shown not to count: %+v, blocked %v, %v", tk, blocked, err)
		}
	}
	if _, _, _, _, err := q.reserve("GET manifests", now, time.Second); !errors.Is(err, errdef.ErrTooManyRequests) {
		t.Errorf("a manifest request with the quota used up: %v", err)
	}
}

// TestQuota429 — a 429 whose Retry-After is beyond the patience stops
// requests without sending them; the gate's error fails the request, not
// retried by the retry policy.
func TestQuota429(t *testing.T) {
	q := newQuota()
	now := time.Now()
	tk, _, _, _, _ := q.reserve("GET tags", now, time.Second)
	q.finish("GET tags", tk, answer(http.StatusTooManyRequests, "Retry-After", "3600"), now)
	_, _, _, _, err := q.reserve("GET tags", now, time.Minute)
	var ra *errdef.RetryAfter
	if !errors.As(err, &ra) || ra.After != time.Hour {
		t.Fatalf("after a 429 of an hour: %v", err)
	}
	if d, _ := DefaultRetryPolicy.Retry(0, nil, err); d >= 0 {
		t.Errorf("the retry policy retries the gate's refusal after %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := q.admit(ctx, "GET tags", time.Minute); !errors.Is(err, errdef.ErrTooManyRequests) {
		t.Errorf("admit: %v", err)
	}
}
