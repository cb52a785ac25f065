package distribution

import "testing"

func TestCacheBounds(t *testing.T) {
	c := newCache[int](100, 1000, func(b []byte) int64 { return int64(len(b)) })
	for i := range 1000 {
		c.put(i, make([]byte, 50))
		if len(c.m) > 100 || c.total > 1000 {
			t.Fatalf("after %d puts: %d entries, %d bytes", i+1, len(c.m), c.total)
		}
		if _, ok := c.get(i); !ok {
			t.Fatalf("entry %d not kept", i)
		}
	}
	c.put(-1, make([]byte, 500)) // over a tenth of the budget: not cached
	if _, ok := c.get(-1); ok {
		t.Error("an entry of half the budget was cached")
	}
	var sum int64
	for _, v := range c.m {
		sum += int64(len(v))
	}
	if sum != c.total {
		t.Errorf("total %d, entries hold %d", c.total, sum)
	}
}
