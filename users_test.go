package mooring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

func newUsers(t *testing.T, db *bun.DB) *mooring.Users {
	t.Helper()
	if err := mooring.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	u := mooring.NewUsers(db)
	u.Tarpit = time.Millisecond
	if err := u.SetPassword(context.Background(), "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPasswordGuessingIsLimited: a client guessing passwords is refused
// with ErrTooManyRequests after its allowance, also for other users' names,
// while a user whose credentials were verified keeps working from its own
// address; the refusal says when to come back.
func TestPasswordGuessingIsLimited(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		u := newUsers(t, db)
		if err := u.SetPassword(ctx, "bob", "bob-password"); err != nil {
			t.Fatal(err)
		}
		if err := u.Authenticate(ctx, "10.0.0.2", "alice", "alice-password"); err != nil {
			t.Fatal(err)
		}
		limited := 0
		for i := range 50 {
			err := u.Authenticate(ctx, "10.0.0.66", "alice", "guess"+strings.Repeat("x", i))
			switch {
			case errors.Is(err, errdef.ErrTooManyRequests):
				limited++
				var ra *errdef.RetryAfter
				if !errors.As(err, &ra) || ra.After <= 0 {
					t.Fatalf("a refusal without a Retry-After: %v", err)
				}
			case !errors.Is(err, mooring.ErrBadCredentials):
				t.Fatalf("guess %d: %v", i, err)
			}
		}
		if limited < 35 {
			t.Errorf("%d of 50 guesses were refused before checking; want all but the first ~10", limited)
		}
		if err := u.Authenticate(ctx, "10.0.0.66", "bob", "bob-password"); !errors.Is(err, errdef.ErrTooManyRequests) {
			t.Errorf("the guessing client with another user's right password: %v, want refused while limited", err)
		}
		if err := u.Authenticate(ctx, "10.0.0.2", "alice", "alice-password"); err != nil {
			t.Errorf("alice from her own address during the flood: %v", err)
		}
		if err := u.Authenticate(ctx, "10.0.0.3", "bob", "bob-password"); err != nil {
			t.Errorf("bob from another address during the flood: %v", err)
		}
	})
}

// TestPasswordBytes: bcrypt checks 72 bytes, so longer passwords are
// refused when set and when presented; NUL bytes and invalid UTF-8 in
// names are refused, never an internal error.
func TestPasswordBytes(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		u := newUsers(t, db)
		long := strings.Repeat("p", 73)
		if err := u.SetPassword(ctx, "carol", long); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("setting a 73-byte password: %v, want ErrInvalid", err)
		}
		if err := u.SetPassword(ctx, "carol", long[:72]); err != nil {
			t.Fatal(err)
		}
		if err := u.Authenticate(ctx, "c", "carol", long); !errors.Is(err, mooring.ErrBadCredentials) {
			t.Errorf("logging in with the 72 bytes and one more: %v, want ErrBadCredentials", err)
		}
		for _, name := range []string{"al\x00ice", "\xff\xfe"} {
			if err := u.Authenticate(ctx, "c", name, "alice-password"); !errors.Is(err, mooring.ErrBadCredentials) {
				t.Errorf("user %q: %v, want ErrBadCredentials", name, err)
			}
			if err := u.SetPassword(ctx, name, "x"); !errors.Is(err, errdef.ErrInvalid) {
				t.Errorf("creating user %q: %v, want ErrInvalid", name, err)
			}
		}
	})
}
