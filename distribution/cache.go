package distribution

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// cache is a map bounded in entries and in cost (bytes, say): when either
// bound is reached, an arbitrary tenth of the entries is dropped. Entries
// never expire; callers key them by immutable things.
type cache[K comparable, V any] struct {
	mu      sync.RWMutex
	m       map[K]V
	max     int
	maxCost int64
	cost    func(V) int64
	total   int64

	hits, misses atomic.Uint64
}

func newCache[K comparable, V any](max int, maxCost int64, cost func(V) int64) *cache[K, V] {
	if cost == nil {
		cost = func(V) int64 { return 0 }
	}
	return &cache[K, V]{m: make(map[K]V), max: max, maxCost: maxCost, cost: cost}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return v, ok
}

// counts returns the cache's lookups so far and its size now.
func (c *cache[K, V]) counts() CacheCounts {
	c.mu.RLock()
	n := len(c.m)
	c.mu.RUnlock()
	return CacheCounts{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: n}
}

// CacheCounts are one cache's lookups since the Registry was made, and
// how many entries it holds.
type CacheCounts struct {
	Hits, Misses uint64
	Entries      int
}

// CacheStats are the lookups of the Registry's caches: Manifests (a
// manifest or tag of a version, resolved), Tags (a version's tag list) and
// Blobs (whether a version holds a blob). A miss reads the database.
type CacheStats struct {
	Manifests, Tags, Blobs CacheCounts
}

// CacheStats returns how the Registry's caches have done so far, for
// metrics.
func (r *Registry) CacheStats() CacheStats {
	return CacheStats{Manifests: r.manifests.counts(), Tags: r.tags.counts(), Blobs: r.blobOK.counts()}
}

func (c *cache[K, V]) put(k K, v V) {
	cost := c.cost(v)
	if c.maxCost > 0 && cost > c.maxCost/10 {
		return // one entry may not take more than a tenth of the budget
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		c.total -= c.cost(old)
		delete(c.m, k)
	}
	for len(c.m) > 0 && (len(c.m) >= c.max || (c.maxCost > 0 && c.total+cost > c.maxCost)) {
		drop := max(len(c.m)/10, 1)
		for key, old := range c.m {
			c.total -= c.cost(old)
			delete(c.m, key)
			if drop--; drop == 0 {
				break
			}
		}
	}
	c.m[k] = v
	c.total += cost
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
