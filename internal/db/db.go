// Package db opens Mooring's metadata database (SQLite by default,
// PostgreSQL for a postgres:// DSN) through bun, and runs embedded schema
// migrations.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite"
)

// ErrInvalidDSN is returned by Open for a DSN it cannot use.
var ErrInvalidDSN = errors.New("invalid database DSN")

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// schemeRe matches a URL scheme at the start of a DSN: two or more
// letters, so that a Windows drive letter is not taken for one.
var schemeRe = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)

// SQLitePath returns the file path of an SQLite DSN (sqlite://PATH,
// file:PATH or a plain path), or an error wrapping ErrInvalidDSN for a DSN
// that is empty, names no path, or has a scheme Mooring does not speak
// (mysql://…): such a DSN is refused, never taken for a file name.
func SQLitePath(dsn string) (string, error) {
	path := dsn
	switch m := schemeRe.FindStringSubmatch(dsn); {
	case strings.HasPrefix(dsn, "sqlite://"):
		path = strings.TrimPrefix(dsn, "sqlite://")
	case strings.HasPrefix(dsn, "file:"):
		path = strings.TrimPrefix(dsn, "file:")
	case m != nil:
		return "", fmt.Errorf("%w: %q: %s is not a database Mooring speaks; want an SQLite file path or postgres://…", ErrInvalidDSN, dsn, m[1])
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return "", fmt.Errorf("%w: no SQLite file path in %q", ErrInvalidDSN, dsn)
	}
	return path, nil
}

// Check reports, without connecting, whether Open would accept dsn's form.
func Check(dsn string) error {
	if dsn == "" {
		return fmt.Errorf("%w: empty", ErrInvalidDSN)
	}
	if IsPostgres(dsn) {
		if _, err := url.Parse(dsn); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidDSN, err)
		}
		return nil
	}
	_, err := SQLitePath(dsn)
	return err
}

// execMode sets pgx's default_query_exec_mode to exec unless dsn sets it.
// bun writes every argument into the SQL text, so nearly every statement
// is new: pgx's default, preparing and caching each (512 per
// connection), costs a round trip more per statement and keeps the text
// of the last 512, megabytes each for multi-row INSERTs of manifests.
func execMode(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // sql.Open reports it
	}
	q := u.Query()
	if q.Has("default_query_exec_mode") {
		return dsn
	}
	q.Set("default_query_exec_mode", "exec")
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens the database named by dsn:
//   - postgres://… or postgresql://…: PostgreSQL through pgx;
//   - sqlite://PATH, file:PATH or a plain file path: SQLite (pure Go, no cgo)
//     in WAL mode with foreign keys on, a busy timeout, and write
//     transactions that take the lock at BEGIN so concurrent writers wait
//     rather than fail.
//
// The parent directory of an SQLite file is created if missing. Open does
// not migrate; each package's Migrate does.
func Open(ctx context.Context, dsn string) (*bun.DB, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidDSN)
	}
	if IsPostgres(dsn) {
		sqldb, err := sql.Open("pgx", execMode(dsn))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidDSN, err)
		}
		sqldb.SetMaxOpenConns(4 * runtime.GOMAXPROCS(0))
		sqldb.SetMaxIdleConns(4 * runtime.GOMAXPROCS(0))
		db := bun.NewDB(sqldb, pgdialect.New())
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		return db, nil
	}
	path, err := SQLitePath(dsn)
	if err != nil {
		return nil, err
	}
	// The database holds users' password hashes and remotes' secrets:
	// only its owner reads it. SQLite gives its -wal and -shm files the
	// database file's mode.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(30000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDSN, err)
	}
	sqldb.SetMaxOpenConns(8)
	sqldb.SetMaxIdleConns(8)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return db, nil
}
