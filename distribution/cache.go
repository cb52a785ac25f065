package distribution

import (
	"bytes"
	"sync"
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
	return v, ok
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
