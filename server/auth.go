package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"
)

// AdminUser is the user created at start.
const AdminUser = "admin"

type user struct {
	bun.BaseModel `bun:"table:users"`

	Username     string    `bun:"username,pk"`
	PasswordHash string    `bun:"password_hash"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

// SetPassword sets (creating the user if needed) the password of username,
// stored as a bcrypt hash.
func SetPassword(ctx context.Context, db bun.IDB, username, password string) error {
	if username == "" || password == "" {
		return errors.New("empty username or password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	u := &user{Username: username, PasswordHash: string(hash), CreatedAt: now, UpdatedAt: now}
	_, err = db.NewInsert().Model(u).
		On("CONFLICT (username) DO UPDATE").Set("password_hash = EXCLUDED.password_hash, updated_at = EXCLUDED.updated_at").
		Exec(ctx)
	return err
}

// EnsureAdmin gives the admin user a password. With password set it sets or
// resets it. Otherwise, when there is no admin yet, it generates one and
// returns it so the caller can show it once; an existing admin keeps its
// password and "" is returned. Processes starting at once on one database
// may all generate a password: only the one whose insert won returns it.
func EnsureAdmin(ctx context.Context, db bun.IDB, password string) (generated string, err error) {
	if password != "" {
		return "", SetPassword(ctx, db, AdminUser, password)
	}
	n, err := db.NewSelect().Model((*user)(nil)).Where("username = ?", AdminUser).Count(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "", nil
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	generated = base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(generated), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	res, err := db.NewInsert().Model(&user{Username: AdminUser, PasswordHash: string(hash), CreatedAt: now, UpdatedAt: now}).
		On("CONFLICT (username) DO NOTHING").Exec(ctx)
	if err != nil {
		return "", err
	}
	if inserted, err := res.RowsAffected(); err != nil || inserted == 0 {
		return "", err // another process created the admin first
	}
	return generated, nil
}

// authCache remembers recently verified credentials for a short while, so
// that bcrypt (tens of milliseconds by design) runs once per client and
// minute rather than on every request. It holds hashes, never passwords.
type authCache struct {
	mu sync.Mutex
	ok map[[32]byte]time.Time
}

const authCacheTTL = time.Minute

func credKey(user, pass, hash string) [32]byte {
	return sha256.Sum256([]byte(user + "\x00" + pass + "\x00" + hash))
}

// authenticate checks HTTP Basic credentials against the users table.
func (s *Server) authenticate(r *http.Request) error {
	name, pass, ok := r.BasicAuth()
	if !ok {
		return errUnauthenticated
	}
	u := new(user)
	err := s.db.NewSelect().Model(u).Where("username = ?", name).Scan(r.Context())
	if errors.Is(err, sql.ErrNoRows) {
		// Spend the time a check would, so names cannot be probed.
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pass))
		return errBadCredentials
	}
	if err != nil {
		return fmt.Errorf("read user: %w", err)
	}
	// The key includes the stored hash, so a reset password invalidates it.
	key := credKey(name, pass, u.PasswordHash)
	now := time.Now()
	s.auth.mu.Lock()
	exp, hit := s.auth.ok[key]
	s.auth.mu.Unlock()
	if hit && now.Before(exp) {
		return nil
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pass)) != nil {
		return errBadCredentials
	}
	s.auth.mu.Lock()
	if len(s.auth.ok) > 10000 {
		clear(s.auth.ok)
	}
	s.auth.ok[key] = now.Add(authCacheTTL)
	s.auth.mu.Unlock()
	return nil
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("mooring"), bcrypt.DefaultCost)
