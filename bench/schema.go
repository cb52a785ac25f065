package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"

	mooringdb "github.com/mooring-dev/mooring/internal/db"
)

// FreshSchema returns, for a PostgreSQL dsn, the DSN of a new empty
// schema in that database and what drops it; any other dsn (an SQLite
// file) is returned as it is, with a drop that does nothing.
func FreshSchema(ctx context.Context, dsn, prefix string) (string, func(), error) {
	if !mooringdb.IsPostgres(dsn) {
		return dsn, func() {}, nil
	}
	admin, err := mooringdb.Open(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := prefix + "_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return "", nil, err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	}, nil
}
