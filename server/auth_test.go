package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

func TestEnsureAdmin(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		if err := mooring.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		generated, err := mooring.NewUsers(db).EnsureAdmin(ctx, "")
		if err != nil || len(generated) < 16 {
			t.Fatalf("first start: %q, %v", generated, err)
		}
		again, err := mooring.NewUsers(db).EnsureAdmin(ctx, "")
		if err != nil || again != "" {
			t.Fatalf("second start generated %q (%v); the first password must stay", again, err)
		}
		var hash string
		if err := db.NewSelect().Table("users").Column("password_hash").Where("username = ?", mooring.AdminUser).Scan(ctx, &hash); err != nil {
			t.Fatal(err)
		}
		if hash == generated || len(hash) < 50 {
			t.Errorf("password not stored hashed: %q", hash)
		}
		e := newEnv(t, db) // sets the admin password to the test's
		r := e.call("GET", "/pulp/api/v3/repositories/", nil, func(r *http.Request) { r.SetBasicAuth("admin", generated) })
		if r.status != http.StatusUnauthorized {
			t.Errorf("old password after a reset: %d", r.status)
		}
		if _, err := mooring.NewUsers(db).EnsureAdmin(ctx, "new-password"); err != nil {
			t.Fatal(err)
		}
		r = e.call("GET", "/pulp/api/v3/repositories/", nil, func(r *http.Request) { r.SetBasicAuth("admin", "new-password") })
		if r.status != http.StatusOK {
			t.Errorf("reset password: %d", r.status)
		}
	})
}
