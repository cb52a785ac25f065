package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/server"
)

// TestEnsureAdminConcurrentFirstStart starts several "processes" on one
// empty database without a password: exactly one of them prints a
// generated password, and that password is the admin's.
func TestEnsureAdminConcurrentFirstStart(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		if err := mooring.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var printed []string
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				p, err := mooring.NewUsers(db).EnsureAdmin(ctx, "")
				if err != nil {
					t.Error(err)
				}
				if p != "" {
					mu.Lock()
					printed = append(printed, p)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(printed) != 1 {
			t.Fatalf("%d starts printed a password, want exactly 1", len(printed))
		}
		api := httptest.NewServer(newServer(t, db, nil, server.Options{Logger: slog.New(slog.DiscardHandler)}, mooring.Options{}).API())
		defer api.Close()
		req, _ := http.NewRequest("GET", api.URL+"/pulp/api/v3/repositories/", nil)
		req.SetBasicAuth(mooring.AdminUser, printed[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("the printed password: %s, want 200 OK", resp.Status)
		}
		if p, err := mooring.NewUsers(db).EnsureAdmin(ctx, ""); err != nil || p != "" {
			t.Errorf("a later start printed %q, %v", p, err)
		}
	})
}
