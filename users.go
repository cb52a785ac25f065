package mooring

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"

	"github.com/mooring-dev/mooring/content/errdef"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateUsers creates the users table.
func migrateUsers(ctx context.Context, db *bun.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return mooringdb.Migrate(ctx, db, mooringdb.Migrations{Set: "users", FS: sub})
}

// AdminUser is the user EnsureAdmin creates.
const AdminUser = "admin"

type user struct {
	bun.BaseModel `bun:"table:users"`

	Username     string    `bun:"username,pk"`
	PasswordHash string    `bun:"password_hash"`
	Admin        bool      `bun:"is_admin"`
	Disabled     bool      `bun:"disabled"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

// Users holds the users who may use the REST API and push, with their
// passwords as bcrypt hashes. It is safe for concurrent use.
type Users struct {
	db bun.IDB

	// Limiter rate-limits failed logins; NewUsers sets
	// DefaultLoginLimiter().
	Limiter *LoginLimiter
	// Tarpit is the longest a login refused by Limiter is held before it is
	// answered; NewUsers sets a second.
	Tarpit time.Duration

	mu sync.Mutex
	ok map[[32]byte]time.Time // recently verified credentials, hashed
}

// NewUsers returns the Users of db (migrated with Migrate).
func NewUsers(db bun.IDB) *Users {
	return &Users{db: db, ok: map[[32]byte]time.Time{}, Limiter: DefaultLoginLimiter(), Tarpit: time.Second}
}

// MaxPasswordLength is the longest password accepted, in bytes: bcrypt
// ignores what follows, so a longer one would be only partly checked.
const MaxPasswordLength = 72

// checkUsername refuses a name that is empty, too long, or not text a
// database can hold.
func checkUsername(username string) error {
	if username == "" || len(username) > 150 || !utf8.ValidString(username) || strings.ContainsRune(username, 0) {
		return errdef.Field("username", "1 to 150 bytes of UTF-8 text without NUL characters")
	}
	return nil
}

// hashPassword is the stored form of a password.
func hashPassword(password string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(hash), err
}

// checkPassword refuses a password bcrypt could not check whole.
func checkPassword(password string) error {
	switch {
	case password == "":
		return errdef.New(errdef.ErrInvalid, "the password is empty")
	case len(password) > MaxPasswordLength:
		return errdef.New(errdef.ErrInvalid, "the password is %d bytes long; the limit is %d", len(password), MaxPasswordLength)
	}
	return nil
}

// SetPassword sets (creating the user if needed) the password of username.
func (u *Users) SetPassword(ctx context.Context, username, password string) error {
	if err := checkUsername(username); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	// The user named AdminUser is created an administrator.
	_, err = u.db.NewInsert().Model(&user{Username: username, PasswordHash: hash, Admin: username == AdminUser, CreatedAt: now, UpdatedAt: now}).
		On("CONFLICT (username) DO UPDATE").Set("password_hash = EXCLUDED.password_hash, updated_at = EXCLUDED.updated_at").
		Exec(ctx)
	u.forget()
	return err
}

// EnsureAdmin gives the admin user a password. With password set it sets or
// resets it. Otherwise, when there is no admin yet, it generates one and
// returns it so the caller can show it once; an existing admin keeps its
// password and "" is returned. Processes starting at once on one database
// may all generate a password: only the one whose insert won returns it.
func (u *Users) EnsureAdmin(ctx context.Context, password string) (generated string, err error) {
	if password != "" {
		return "", u.SetPassword(ctx, AdminUser, password)
	}
	if n, err := u.db.NewSelect().Model((*user)(nil)).Where("username = ?", AdminUser).Count(ctx); err != nil || n > 0 {
		return "", err
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
	res, err := u.db.NewInsert().Model(&user{Username: AdminUser, PasswordHash: string(hash), Admin: true, CreatedAt: now, UpdatedAt: now}).
		On("CONFLICT (username) DO NOTHING").Exec(ctx)
	if err != nil {
		return "", err
	}
	if inserted, err := res.RowsAffected(); err != nil || inserted == 0 {
		return "", err // another process created the admin first
	}
	return generated, nil
}

// Errors of Authenticate.
var (
	// ErrBadCredentials: no such user, or the wrong password.
	ErrBadCredentials = errdef.New(errdef.ErrUnauthorized, "Invalid username/password.")
)

const authCacheTTL = time.Minute

// Authenticate checks a username and password presented from client (an
// address, or "" when unknown); a wrong pair is ErrBadCredentials
// (errdef.ErrUnauthenticated). Failed logins are rate-limited per client
// and per user (Limiter): past the limit the answer is an error wrapping
// errdef.ErrTooManyRequests with an *errdef.RetryAfter, without a
// database read or a bcrypt check, after a pause of up to a second. Credentials verified in the last
// minute are accepted without running bcrypt again (tens of milliseconds
// by design), so that a client costs one check a minute.
func (u *Users) Authenticate(ctx context.Context, client, username, password string) error {
	clientKey, userKey := "client "+client, "user "+username
	if err := u.Limiter.Check(clientKey); err != nil {
		return tarpit(ctx, u.Tarpit, err)
	}
	if checkPassword(password) != nil || !utf8.ValidString(username) || strings.ContainsRune(username, 0) {
		u.Limiter.Failed(clientKey, userKey)
		return ErrBadCredentials
	}
	rec := new(user)
	err := u.db.NewSelect().Model(rec).Where("username = ?", username).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		// Spend the time a check would, so names cannot be probed.
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		u.Limiter.Failed(clientKey, userKey)
		return ErrBadCredentials
	}
	if err != nil {
		return fmt.Errorf("read user: %w", err)
	}
	if rec.Disabled {
		u.Limiter.Failed(clientKey, userKey)
		return ErrBadCredentials
	}
	// The key includes the stored hash, so a reset password invalidates it.
	key := sha256.Sum256([]byte(username + "\x00" + password + "\x00" + rec.PasswordHash))
	now := time.Now()
	u.mu.Lock()
	exp, hit := u.ok[key]
	u.mu.Unlock()
	if hit && now.Before(exp) {
		return nil
	}
	if err := u.Limiter.Check(userKey); err != nil {
		return tarpit(ctx, u.Tarpit, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(rec.PasswordHash), []byte(password)) != nil {
		u.Limiter.Failed(clientKey, userKey)
		return ErrBadCredentials
	}
	u.mu.Lock()
	if len(u.ok) > 10000 {
		clear(u.ok)
	}
	u.ok[key] = now.Add(authCacheTTL)
	u.mu.Unlock()
	return nil
}

// tarpit holds a refused login for up to wait (its Retry-After, at most)
// before returning err: a flood of guesses then runs at the pace of
// its connections, one request a second each, instead of at the pace the
// server can answer 429s, which would starve everybody else of CPU.
func tarpit(ctx context.Context, wait time.Duration, err error) error {
	var ra *errdef.RetryAfter
	if errors.As(err, &ra) {
		wait = min(wait, ra.After)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return err
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("mooring"), bcrypt.DefaultCost)
