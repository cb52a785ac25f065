package mooring

import (
	"math"
	"sync"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
)

// LoginLimiter rate-limits failed logins per client address and per user,
// so that guessing passwords costs the guesser, not everybody else: a key
// whose failures ran out of allowance is refused at once, without a
// database read or a bcrypt check, until its allowance refills. Successful
// logins cost nothing. It is safe for concurrent use; its state is per
// process.
type LoginLimiter struct {
	// Burst is how many failures in a row a key may have; Every is how
	// long one more allowed failure takes to come back.
	Burst int
	Every time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLoginLimiter returns a limiter allowing burst failures per key, one
// more each every.
func NewLoginLimiter(burst int, every time.Duration) *LoginLimiter {
	return &LoginLimiter{Burst: burst, Every: every, buckets: map[string]*bucket{}}
}

// DefaultLoginLimiter allows 10 failures in a row per address or user,
// then one every 6 seconds.
func DefaultLoginLimiter() *LoginLimiter { return NewLoginLimiter(10, 6*time.Second) }

// refill brings b up to date at now; call with l.mu held.
func (l *LoginLimiter) refill(b *bucket, now time.Time) {
	b.tokens = math.Min(float64(l.Burst), b.tokens+float64(now.Sub(b.at))/float64(l.Every))
	b.at = now
}

// Check returns nil when every key still has failures to spend, else an
// error wrapping errdef.ErrTooManyRequests with an *errdef.RetryAfter.
func (l *LoginLimiter) Check(keys ...string) error {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		b, ok := l.buckets[k]
		if !ok {
			continue
		}
		l.refill(b, now)
		if b.tokens < 1 {
			wait = max(wait, time.Duration((1-b.tokens)*float64(l.Every)))
		}
	}
	if wait == 0 {
		return nil
	}
	return &errdef.RetryAfter{After: wait, Err: errdef.New(errdef.ErrTooManyRequests, "too many failed logins; try again in %s", wait.Round(time.Second))}
}

// Failed spends one failure of each key.
func (l *LoginLimiter) Failed(keys ...string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > 100000 {
		l.prune(now)
	}
	for _, k := range keys {
		b, ok := l.buckets[k]
		if !ok {
			b = &bucket{tokens: float64(l.Burst), at: now}
			l.buckets[k] = b
		}
		l.refill(b, now)
		b.tokens = math.Max(b.tokens-1, -float64(l.Burst))
	}
}

// prune forgets keys whose allowance is full again; call with l.mu held.
func (l *LoginLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now); b.tokens >= float64(l.Burst) {
			delete(l.buckets, k)
		}
	}
}
