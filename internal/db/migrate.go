package db

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Migrations is one package's ordered set of schema migrations.
//
// FS holds files named NNNN_description.sql, applied in numeric order. A
// file named NNNN_description.pg.sql or NNNN_description.sqlite.sql applies
// only on that dialect. Statements are separated by a line ending in ";".
type Migrations struct {
	// Set names the package the migrations belong to; versions are per set.
	Set string
	FS  fs.FS
}

type migration struct {
	version int
	name    string
	stmts   []string
}

// Migrate applies every migration of m not yet applied, each in its own
// transaction together with its bookkeeping row. It is idempotent and safe
// to run from several processes at once: on PostgreSQL an advisory lock
// serialises them, on SQLite the write lock does.
func Migrate(ctx context.Context, db *bun.DB, m Migrations) error {
	list, err := load(db.Dialect().Name(), m.FS)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", m.Set, err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS mooring_migrations (
		set_name VARCHAR(64) NOT NULL,
		version INTEGER NOT NULL,
		name VARCHAR(255) NOT NULL,
		applied_at TIMESTAMP NOT NULL,
		PRIMARY KEY (set_name, version))`); err != nil {
		// Two processes racing to create the table on PostgreSQL can see a
		// unique violation on the catalog; the table exists either way.
		if !strings.Contains(err.Error(), "already exists") && !strings.Contains(err.Error(), "duplicate key") {
			return fmt.Errorf("create migrations table: %w", err)
		}
	}
	for _, mg := range list {
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if db.Dialect().Name() == dialect.PG {
				h := fnv.New64a()
				h.Write([]byte("mooring-migrate"))
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(h.Sum64()>>1)); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM mooring_migrations WHERE set_name = ? AND version = ?", m.Set, mg.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, s := range mg.stmts {
				if _, err := tx.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", firstLine(s), err)
				}
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO mooring_migrations (set_name, version, name, applied_at) VALUES (?, ?, ?, ?)",
				m.Set, mg.version, mg.name, time.Now().UTC())
			return err
		})
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("migration %s/%04d_%s: %w", m.Set, mg.version, mg.name, err)
		}
	}
	return nil
}

func load(d dialect.Name, fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		base := strings.TrimSuffix(name, ".sql")
		switch {
		case strings.HasSuffix(base, ".pg"):
			if d != dialect.PG {
				continue
			}
			base = strings.TrimSuffix(base, ".pg")
		case strings.HasSuffix(base, ".sqlite"):
			if d != dialect.SQLite {
				continue
			}
			base = strings.TrimSuffix(base, ".sqlite")
		}
		num, desc, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_description.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration files %q and %q share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: desc, stmts: split(string(body))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// split cuts a script into statements at lines that end in ";", dropping
// comment-only lines.
func split(script string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			stmts = append(stmts, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
