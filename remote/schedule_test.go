package remote_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// scheduleFixture is a remote and repositories to schedule syncs between.
type scheduleFixture struct {
	store  *remote.Store
	tasks  *task.Store
	repos  *repository.Store
	remote *remote.Remote
}

func newScheduleFixture(t *testing.T, db *bun.DB) *scheduleFixture {
	t.Helper()
	ctx := context.Background()
	migrated(t, db)
	if err := task.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	f := &scheduleFixture{store: remote.NewStore(db), tasks: task.NewStore(db), repos: repository.NewStore(db)}
	f.remote = remote.New("upstream", "https://registry.example", "busybox")
	if err := f.store.Create(ctx, f.remote); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *scheduleFixture) repo(t *testing.T, name string) *repository.Repository {
	t.Helper()
	r, err := f.repos.CreateRepository(context.Background(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestScheduleStore(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newScheduleFixture(t, db)
		repo := f.repo(t, "foo")
		s := &remote.Schedule{Name: "nightly", RemoteID: f.remote.ID, RepositoryID: repo.ID, Interval: 24 * time.Hour}
		before := time.Now().Add(-time.Second)
		if err := f.store.CreateSchedule(ctx, s); err != nil {
			t.Fatal(err)
		}
		if s.ID == "" || s.NextRun.Before(before) || s.NextRun.After(time.Now()) || s.RepositoryKey != repo.ID || s.LastRun != nil {
			t.Errorf("created %+v: want an id, the first run now, the ids as keys, no last run", s)
		}
		got, err := f.store.GetSchedule(ctx, s.ID)
		if err != nil || got.Name != "nightly" || got.Interval != 24*time.Hour || !got.NextRun.Equal(s.NextRun) {
			t.Errorf("GetSchedule = %+v, %v", got, err)
		}

		for _, c := range []struct {
			s     remote.Schedule
			field string
		}{
			{remote.Schedule{Name: "", RemoteID: f.remote.ID, RepositoryID: repo.ID, Interval: time.Hour}, "name"},
			{remote.Schedule{Name: "x", RemoteID: f.remote.ID, RepositoryID: repo.ID, Interval: 0}, "dispatch_interval"},
			{remote.Schedule{Name: "x", RemoteID: f.remote.ID, RepositoryID: repo.ID, Interval: 1500 * time.Millisecond}, "dispatch_interval"},
			{remote.Schedule{Name: "x", RemoteID: "00000000-0000-0000-0000-000000000000", RepositoryID: repo.ID, Interval: time.Hour}, "remote"},
			{remote.Schedule{Name: "x", RemoteID: f.remote.ID, RepositoryID: "00000000-0000-0000-0000-000000000000", Interval: time.Hour}, "repository"},
			{remote.Schedule{Name: "nightly", RemoteID: f.remote.ID, RepositoryID: repo.ID, Interval: time.Hour}, "name"},
		} {
			err := f.store.CreateSchedule(ctx, &c.s)
			var fe *errdef.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("CreateSchedule(%+v) = %v, want an error about %s", c.s, err, c.field)
			}
		}
		if list, n, err := f.store.ListSchedules(ctx, remote.ScheduleFilter{}); err != nil || n != 1 || len(list) != 1 {
			t.Errorf("a refused schedule was stored: %d %v %v", n, list, err)
		}

		s.Interval, s.Mirror = time.Hour, true
		if err := f.store.UpdateSchedule(ctx, s); err != nil || s.Interval != time.Hour || !s.Mirror {
			t.Errorf("UpdateSchedule = %v, %+v", err, s)
		}

		// A schedule goes with its repository, and with its remote.
		other := f.repo(t, "bar")
		s2 := &remote.Schedule{Name: "hourly", RemoteID: f.remote.ID, RepositoryID: other.ID, Interval: time.Hour}
		if err := f.store.CreateSchedule(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NewDelete().TableExpr("repositories").Where("id = ?", other.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.GetSchedule(ctx, s2.ID); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("schedule of a deleted repository: %v", err)
		}
		if err := f.store.Delete(ctx, f.remote.ID); err != nil {
			t.Fatal(err)
		}
		if _, n, _ := f.store.ListSchedules(ctx, remote.ScheduleFilter{}); n != 0 {
			t.Errorf("%d schedules left after their remote was deleted", n)
		}
		if err := f.store.DeleteSchedule(ctx, s.ID); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("DeleteSchedule of a gone schedule: %v", err)
		}
	})
}

// TestScheduleDispatchOncePerPeriod: many dispatchers at once (as many
// processes sharing the database would be) enqueue each period's sync
// exactly once; a period while the previous sync still runs is skipped;
// periods missed while nobody dispatched run once.
func TestScheduleDispatchOncePerPeriod(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newScheduleFixture(t, db)
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		const interval = time.Minute
		var schedules []*remote.Schedule
		for _, name := range []string{"a", "b", "c"} {
			s := &remote.Schedule{Name: name, RemoteID: f.remote.ID, RepositoryID: f.repo(t, name).ID, Interval: interval, NextRun: start}
			if err := f.store.CreateSchedule(ctx, s); err != nil {
				t.Fatal(err)
			}
			schedules = append(schedules, s)
		}

		// dispatchAll has 8 dispatchers call at once, at times within the
		// period, and returns the tasks they enqueued.
		dispatchAll := func(at time.Time) ([]*task.Task, int) {
			var mu sync.Mutex
			var all []*task.Task
			skipped := 0
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					d, err := remote.NewStore(db).DispatchSchedules(ctx, at.Add(time.Duration(i)*time.Second))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					all = append(all, d.Enqueued...)
					skipped += d.Skipped
					mu.Unlock()
				})
			}
			wg.Wait()
			return all, skipped
		}
		finish := func(ts []*task.Task) {
			for _, tk := range ts {
				if _, err := f.tasks.Cancel(ctx, tk.ID); err != nil {
					t.Fatal(err)
				}
			}
		}

		if ts, _ := dispatchAll(start.Add(-10 * time.Second)); len(ts) != 0 {
			t.Fatalf("%d syncs enqueued before the first run", len(ts))
		}
		for period := range 5 {
			ts, skipped := dispatchAll(start.Add(time.Duration(period)*interval + time.Second))
			if len(ts) != len(schedules) || skipped != 0 {
				t.Fatalf("period %d: %d syncs enqueued, %d skipped; want one per schedule", period, len(ts), skipped)
			}
			repos := map[string]bool{}
			for _, tk := range ts {
				if tk.Name != remote.SyncTask {
					t.Errorf("enqueued a %q task", tk.Name)
				}
				for _, r := range tk.Resources {
					repos[r] = true
				}
			}
			if len(repos) != len(schedules)+1 { // each repository and the one remote
				t.Errorf("period %d: syncs hold %v", period, repos)
			}
			finish(ts)
		}
		got, _ := f.store.GetSchedule(ctx, schedules[0].ID)
		if want := start.Add(5 * interval); !got.NextRun.Equal(want) || got.LastRun == nil || got.LastTaskID == "" {
			t.Errorf("after 5 periods: next run %v (want %v), last run %v, last task %q", got.NextRun, want, got.LastRun, got.LastTaskID)
		}

		// The syncs of period 5 are left running: period 6 is skipped.
		ts, _ := dispatchAll(start.Add(5*interval + time.Second))
		if len(ts) != len(schedules) {
			t.Fatalf("period 5: %d syncs", len(ts))
		}
		again, skipped := dispatchAll(start.Add(6*interval + time.Second))
		if len(again) != 0 || skipped != len(schedules) {
			t.Errorf("period 6, previous syncs unfinished: %d enqueued, %d skipped; want all skipped", len(again), skipped)
		}
		got, _ = f.store.GetSchedule(ctx, schedules[0].ID)
		if got.Skipped != 1 || !got.NextRun.Equal(start.Add(7*interval)) {
			t.Errorf("after a skip: skipped %d, next run %v", got.Skipped, got.NextRun)
		}
		finish(ts)

		// Nobody dispatched for ten periods: one sync each, and the next
		// run is the next period's start.
		ts, _ = dispatchAll(start.Add(17*interval + 30*time.Second))
		if len(ts) != len(schedules) {
			t.Errorf("after missed periods: %d syncs, want one per schedule", len(ts))
		}
		got, _ = f.store.GetSchedule(ctx, schedules[0].ID)
		if !got.NextRun.Equal(start.Add(18 * interval)) {
			t.Errorf("after missed periods: next run %v, want %v", got.NextRun, start.Add(18*interval))
		}
	})
}
