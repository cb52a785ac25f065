package repository_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

// TestNewVersionUnchangedWritesNothing: a change the latest version
// already holds is ErrNoChange without a transaction or a write, and a
// change of one unit among many writes one membership row.
func TestNewVersionUnchangedWritesNothing(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, err := s.CreateRepository(ctx, "r", "")
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for i := range 300 {
			ids = append(ids, putImage(t, s, fmt.Sprint("img", i)).ids()...)
		}
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: ids}); err != nil {
			t.Fatal(err)
		}
		counter := &mooringdb.StatementCounter{}
		d.AddQueryHook(counter)
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: ids}); !errors.Is(err, repository.ErrNoChange) {
			t.Fatalf("re-adding %d units: %v, want ErrNoChange", len(ids), err)
		}
		if w := counter.Writes(); w != 0 {
			t.Errorf("re-adding %d units the latest version holds: %d statements that write or begin a transaction (%v)", len(ids), w, counter.Counts())
		}

		extra := putImage(t, s, "extra")
		counter.Reset()
		v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: append(slices.Clone(ids), extra.manifest.ID)})
		if err != nil {
			t.Fatal(err)
		}
		if sum, _ := s.Summary(ctx, r.ID, v.Number); sum.Added["docker.manifest"] != 1 || len(sum.Added) != 1 {
			t.Errorf("adding one manifest among %d units: summary %+v", len(ids), sum)
		}
		if n := counter.Counts()["INSERT"]; n != 2 { // a membership row and the version
			t.Errorf("adding one manifest among %d units took %d INSERTs, want 2", len(ids), n)
		}
	})
}

// raceHook runs fn once, right after the first query whose text contains
// match.
type raceHook struct {
	match string
	fn    func()
	done  bool
}

func (h *raceHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *raceHook) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if !h.done && strings.Contains(e.Query, h.match) {
		h.done = true
		h.fn()
	}
}

// TestNewVersionLatestMovedAfterNarrowing: NewVersion reads what the
// latest version holds before it locks the repository; when another
// version is made in between, the whole change applies to the new latest.
// Here the other version removes a unit the change re-adds, which must
// come back.
func TestNewVersionLatestMovedAfterNarrowing(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, err := s.CreateRepository(ctx, "r", "")
		if err != nil {
			t.Fatal(err)
		}
		a, b := putImage(t, s, "a"), putImage(t, s, "b")
		if _, err := s.NewVersion(ctx, r.ID, repository.Change{Add: a.ids()}); err != nil {
			t.Fatal(err)
		}
		other := repository.NewStore(d)
		hook := &raceHook{match: "rc.content_id IN", fn: func() {
			if _, err := other.NewVersion(ctx, r.ID, repository.Change{Remove: a.ids()[:1]}); err != nil {
				t.Errorf("the version made meanwhile: %v", err)
			}
		}}
		d.AddQueryHook(hook)
		v, err := s.NewVersion(ctx, r.ID, repository.Change{Add: append(a.ids(), b.ids()...)})
		if err != nil {
			t.Fatal(err)
		}
		if !hook.done || v.Number != 3 {
			t.Fatalf("version %d made, another made meanwhile: %v", v.Number, hook.done)
		}
		want := sorted(append(a.ids(), b.ids()...))
		if got := members(t, s, r.ID, v.Number); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("version %d holds %v, want %v: the unit removed meanwhile is not back", v.Number, got, want)
		}
	})
}

// TestPutTagsBatches: PutTags stores a batch of tags per statement, in
// the order given, tags naming one manifest included, and stores each tag
// once however often it is put.
func TestPutTagsBatches(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		m := putImage(t, s, "m").manifest
		var tags []repository.TagTarget
		for i := range 1200 {
			tags = append(tags, repository.TagTarget{Name: fmt.Sprintf("v%04d", i), Target: m})
		}
		counter := &mooringdb.StatementCounter{}
		d.AddQueryHook(counter)
		units, err := s.PutTags(ctx, tags)
		if err != nil {
			t.Fatal(err)
		}
		if n := counter.Counts()["INSERT"]; n != 3 {
			t.Errorf("1200 tags took %d INSERTs, want 3", n)
		}
		again, err := s.PutTags(ctx, tags[500:700])
		if err != nil {
			t.Fatal(err)
		}
		for i, u := range units {
			if u.Name != tags[i].Name || u.TaggedID != m.ID || u.Digest != m.Digest || u.ID == 0 {
				t.Fatalf("unit %d: %+v, want tag %s of %s", i, u, tags[i].Name, m.Digest)
			}
			if i >= 500 && i < 700 && again[i-500].ID != u.ID {
				t.Fatalf("tag %s put again: unit %d, first %d", u.Name, again[i-500].ID, u.ID)
			}
		}
		one, err := s.PutTag(ctx, "v0042", m)
		if err != nil || one.ID != units[42].ID {
			t.Errorf("PutTag of a tag PutTags stored: %+v, %v; want unit %d", one, err, units[42].ID)
		}
	})
}
