package remote_test

import (
	"context"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/secrets"
	"github.com/mooring-dev/mooring/remote"
)

// TestSecretsAtRest: with a key, a remote's password, client key and
// proxy URL are sealed in the database and read back plain; a store
// without the key cannot read them; after a rotation Reseal moves them to
// the new key.
func TestSecretsAtRest(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		migrated(t, db)
		k1, _ := secrets.NewKey()
		k2, _ := secrets.NewKey()
		old, _ := secrets.Parse(k1)
		s := remote.NewStore(db)
		s.SetSealer(old)
		r := remote.New("private", "https://registry.example", "team/app")
		r.Username, r.Password = "alice", "s3cret-password"
		r.ProxyURL = "http://proxyuser:proxy-s3cret@127.0.0.1:3128"
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		var stored struct {
			Password string `bun:"password"`
			ProxyURL string `bun:"proxy_url"`
		}
		raw := func() {
			t.Helper()
			if err := db.NewSelect().Table("remotes").Column("password", "proxy_url").Where("id = ?", r.ID).Scan(ctx, &stored); err != nil {
				t.Fatal(err)
			}
		}
		raw()
		if strings.Contains(stored.Password, "s3cret") || strings.Contains(stored.ProxyURL, "proxy-s3cret") || !secrets.IsSealed(stored.Password) {
			t.Errorf("stored in the clear: %+v", stored)
		}
		got, err := s.Get(ctx, r.ID)
		if err != nil || got.Password != "s3cret-password" || got.ProxyURL != r.ProxyURL {
			t.Fatalf("read back: %+v, %v", got, err)
		}
		if r.Password != "s3cret-password" {
			t.Errorf("Create changed the caller's remote: %q", r.Password)
		}
		if _, err := remote.NewStore(db).Get(ctx, r.ID); err == nil {
			if keyless, _ := remote.NewStore(db).Get(ctx, r.ID); keyless.Password == "s3cret-password" {
				t.Error("a store without the key read the password")
			}
		}
		rotated, _ := secrets.Parse(k2 + "\n" + k1)
		s.SetSealer(rotated)
		if n, err := s.Reseal(ctx); err != nil || n < 1 {
			t.Fatalf("Reseal = %d, %v", n, err)
		}
		onlyNew, _ := secrets.Parse(k2)
		s.SetSealer(onlyNew)
		if got, err := s.Get(ctx, r.ID); err != nil || got.Password != "s3cret-password" {
			t.Errorf("after rotation, the new key alone: %v, %v", got, err)
		}
	})
}
