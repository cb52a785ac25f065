package distribution

import (
	"bytes"
	"sync"
)

// cache is a bounded map: when full, an arbitrary tenth of it is dropped.
// Entries never expire; callers key them by immutable things.
type cache[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]V
	max int
}

func newCache[K comparable, V any](max int) *cache[K, V] {
	return &cache[K, V]{m: make(map[K]V), max: max}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		drop := max(c.max/10, 1)
		for key := range c.m {
			delete(c.m, key)
			if drop--; drop == 0 {
				break
			}
		}
	}
	c.m[k] = v
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
