// Package dbtest runs database tests on every dialect Mooring supports:
// SQLite always, and PostgreSQL when MOORING_TEST_POSTGRES holds a DSN.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/db"
)

// EnvPostgres names the environment variable holding a PostgreSQL DSN for tests.
const EnvPostgres = "MOORING_TEST_POSTGRES"

// EnvRequire, when set (as CI sets it), turns a skip for a missing peer
// (PostgreSQL, docker-registry, podman, …) into a failure, so that nothing
// skips silently where everything is meant to be installed.
const EnvRequire = "MOORING_TEST_REQUIRE"

// Dialects lists the dialects tests run on here: "sqlite", and "pg" when
// EnvPostgres is set.
func Dialects() []string {
	if os.Getenv(EnvPostgres) != "" {
		return []string{"sqlite", "pg"}
	}
	return []string{"sqlite"}
}

// Run calls fn in a subtest per dialect, each with a fresh empty database
// (a temporary SQLite file; a PostgreSQL schema of its own, dropped after).
// Without EnvPostgres the PostgreSQL subtest is skipped, saying why.
func Run(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	for _, d := range []string{"sqlite", "pg"} {
		t.Run(d, func(t *testing.T) { fn(t, Open(t, d)) })
	}
}

// Open returns a fresh empty database of the named dialect ("sqlite" or
// "pg"), closed when the test ends. It skips the test for "pg" when
// EnvPostgres is unset.
func Open(tb testing.TB, dialect string) *bun.DB {
	tb.Helper()
	ctx := context.Background()
	if dialect == "sqlite" {
		d, err := db.Open(ctx, filepath.Join(tb.TempDir(), "mooring.db"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { d.Close() })
		return d
	}
	dsn := os.Getenv(EnvPostgres)
	if dsn == "" {
		if os.Getenv(EnvRequire) != "" {
			tb.Fatalf("%s is set but %s is not: PostgreSQL tests must run here", EnvRequire, EnvPostgres)
		}
		tb.Skipf("PostgreSQL tests skipped: set %s to a DSN such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable", EnvPostgres)
	}
	admin, err := db.Open(ctx, dsn)
	if err != nil {
		tb.Fatalf("%s=%q: %v", EnvPostgres, dsn, err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		tb.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	d, err := db.Open(ctx, u.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		d.Close()
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	return d
}
