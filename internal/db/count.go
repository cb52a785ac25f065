package db

import (
	"context"
	"maps"
	"strings"
	"sync"

	"github.com/uptrace/bun"
)

// StatementCounter is a bun query hook that counts the statements a
// database runs by operation ("SELECT", "INSERT", "BEGIN", …): what tests
// and benchmarks add to see what a call writes. Add it with
// db.AddQueryHook.
type StatementCounter struct {
	mu sync.Mutex
	n  map[string]int
}

var _ bun.QueryHook = (*StatementCounter)(nil)

// BeforeQuery implements bun.QueryHook.
func (c *StatementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

// AfterQuery implements bun.QueryHook: it counts the statement.
func (c *StatementCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	op := strings.ToUpper(e.Operation())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op]++
}

// Counts returns the statements counted since the last Reset, by
// operation.
func (c *StatementCounter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Writes returns how many of the statements counted write or open a
// transaction (which, on SQLite, takes the database's write lock):
// INSERT, UPDATE, DELETE, BEGIN, and DDL.
func (c *StatementCounter) Writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := 0
	for op, k := range c.n {
		switch op {
		case "INSERT", "UPDATE", "DELETE", "BEGIN", "CREATE", "DROP", "ALTER", "ANALYZE":
			w += k
		}
	}
	return w
}

// Reset forgets what was counted.
func (c *StatementCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = nil
}
