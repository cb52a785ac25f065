package db_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

func TestMigrateAppliesOnceInOrder(t *testing.T) {
	fsys := fstest.MapFS{
		"0002_add.sql":         {Data: []byte("ALTER TABLE widgets ADD COLUMN colour VARCHAR(20);\n")},
		"0001_init.sql":        {Data: []byte("-- widgets\nCREATE TABLE widgets (\n  id INTEGER PRIMARY KEY\n);\nINSERT INTO widgets (id) VALUES (1);\n")},
		"0003_only.pg.sql":     {Data: []byte("INSERT INTO widgets (id, colour) VALUES (2, 'pg');\n")},
		"0003_only.sqlite.sql": {Data: []byte("INSERT INTO widgets (id, colour) VALUES (2, 'sqlite');\n")},
		"README":               {Data: []byte("not a migration")},
	}
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		m := db.Migrations{Set: "widgets", FS: fsys}
		// Several concurrent runs, as several processes starting at once would.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = db.Migrate(ctx, d, m) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Migrate(ctx, d, m); err != nil {
			t.Fatalf("second run: %v", err)
		}
		var n int
		var colour string
		if err := d.QueryRowContext(ctx, "SELECT count(*) FROM widgets").Scan(&n); err != nil || n != 2 {
			t.Fatalf("widgets rows = %d, %v; want 2 (each migration once)", n, err)
		}
		if err := d.QueryRowContext(ctx, "SELECT colour FROM widgets WHERE id = 2").Scan(&colour); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"sqlite": "sqlite", "pg": "pg"}[d.Dialect().Name().String()]; colour != want {
			t.Errorf("dialect-specific migration gave %q, want %q", colour, want)
		}
	})
}

func TestMigrateRejectsBadNames(t *testing.T) {
	d := dbtest.Open(t, "sqlite")
	err := db.Migrate(context.Background(), d, db.Migrations{Set: "x", FS: fstest.MapFS{"init.sql": {Data: []byte("SELECT 1;")}}})
	if err == nil {
		t.Fatal("a migration file without a version number was accepted")
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		bad := fstest.MapFS{"0001_init.sql": {Data: []byte("CREATE TABLE gadgets (id INTEGER PRIMARY KEY);\nINSERT INTO nowhere VALUES (1);\n")}}
		if err := db.Migrate(ctx, d, db.Migrations{Set: "g", FS: bad}); err == nil {
			t.Fatal("failing migration reported success")
		}
		good := fstest.MapFS{"0001_init.sql": {Data: []byte("CREATE TABLE gadgets (id INTEGER PRIMARY KEY);\n")}}
		if err := db.Migrate(ctx, d, db.Migrations{Set: "g", FS: good}); err != nil {
			t.Fatalf("after a failed migration the fixed one did not apply (half-applied state left?): %v", err)
		}
	})
}

// TestSQLiteFileMode: a new database file is its owner's alone, in a
// directory only its owner enters.
func TestSQLiteFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "mooring.db")
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
	}
}
