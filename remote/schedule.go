package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// Bounds of Schedule.Interval.
const (
	MinScheduleInterval = time.Second
	MaxScheduleInterval = 366 * 24 * time.Hour
)

// Schedule syncs a remote into a repository every Interval: a SyncTask is
// enqueued at NextRun, then once per period after it. Each period's sync
// is enqueued once, however many processes dispatch schedules on the
// database (DispatchSchedules); a period that comes while the previous
// sync is still waiting or running is skipped, not queued behind it.
// Periods missed while no process dispatched run once, not once each. A
// schedule is deleted with its remote or its repository.
type Schedule struct {
	// ID is assigned by CreateSchedule.
	ID string
	// Name is unique among schedules.
	Name string
	// RemoteID and RepositoryID are the remote synced and the repository
	// synced into; both must exist.
	RemoteID, RepositoryID string
	// Mirror is SyncOptions.Mirror of every sync.
	Mirror bool
	// Interval is the period: a whole number of seconds, between
	// MinScheduleInterval and MaxScheduleInterval.
	Interval time.Duration
	// NextRun is when the next sync is due. Zero at creation means now.
	NextRun time.Time
	// LastRun is when the last sync was enqueued, and LastTaskID its task;
	// nil and "" before the first.
	LastRun    *time.Time
	LastTaskID string
	// Skipped counts periods skipped because the previous sync had not
	// finished.
	Skipped int64
	// RepositoryKey and RemoteKey are the task resources of the syncs, as
	// EnqueueSync takes them (the REST API's are hrefs); empty means the
	// IDs.
	RepositoryKey, RemoteKey string
	// CreatedAt is set by CreateSchedule.
	CreatedAt time.Time
}

// scheduleRow is a Schedule as stored.
type scheduleRow struct {
	bun.BaseModel `bun:"table:sync_schedules"`

	ID              string     `bun:"id,pk"`
	Name            string     `bun:"name"`
	RemoteID        string     `bun:"remote_id"`
	RepositoryID    string     `bun:"repository_id"`
	Mirror          bool       `bun:"mirror"`
	IntervalSeconds int64      `bun:"interval_seconds"`
	NextRun         time.Time  `bun:"next_run"`
	LastRun         *time.Time `bun:"last_run"`
	LastTaskID      string     `bun:"last_task_id"`
	Skipped         int64      `bun:"skipped"`
	RepositoryKey   string     `bun:"repository_key"`
	RemoteKey       string     `bun:"remote_key"`
	CreatedAt       time.Time  `bun:"created_at"`
}

func (r *scheduleRow) schedule() *Schedule {
	s := &Schedule{ID: r.ID, Name: r.Name, RemoteID: r.RemoteID, RepositoryID: r.RepositoryID, Mirror: r.Mirror,
		Interval: time.Duration(r.IntervalSeconds) * time.Second, NextRun: r.NextRun.UTC(), LastTaskID: r.LastTaskID,
		Skipped: r.Skipped, RepositoryKey: r.RepositoryKey, RemoteKey: r.RemoteKey, CreatedAt: r.CreatedAt.UTC()}
	if r.LastRun != nil {
		t := r.LastRun.UTC()
		s.LastRun = &t
	}
	return s
}

func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// validate checks the fields a caller sets and fills in defaults.
func (s *Schedule) validate(now time.Time) error {
	s.Name = strings.TrimSpace(s.Name)
	switch {
	case s.Name == "":
		return errdef.Field("name", "This field may not be blank.")
	case len(s.Name) > 255:
		return errdef.Field("name", "Ensure this field has no more than 255 characters.")
	case s.Interval < MinScheduleInterval || s.Interval > MaxScheduleInterval:
		return errdef.Field("dispatch_interval", "Give a period between %v and %v.", MinScheduleInterval, MaxScheduleInterval)
	case s.Interval%time.Second != 0:
		return errdef.Field("dispatch_interval", "Give a whole number of seconds.")
	case s.RemoteID == "":
		return errdef.Field("remote", "This field is required.")
	case s.RepositoryID == "":
		return errdef.Field("repository", "This field is required.")
	}
	if s.NextRun.IsZero() {
		s.NextRun = now
	}
	s.NextRun = stamp(s.NextRun)
	if s.RepositoryKey == "" {
		s.RepositoryKey = s.RepositoryID
	}
	if s.RemoteKey == "" {
		s.RemoteKey = s.RemoteID
	}
	return nil
}

// checkLinks makes sure the schedule's remote and repository exist, as
// field errors.
func checkLinks(ctx context.Context, tx bun.IDB, s *Schedule) error {
	if _, err := NewStore(tx).Get(ctx, s.RemoteID); errors.Is(err, errdef.ErrNotFound) {
		return errdef.Field("remote", "Invalid hyperlink - Object does not exist.")
	} else if err != nil {
		return err
	}
	if _, err := repository.NewStore(tx).Repository(ctx, s.RepositoryID); errors.Is(err, errdef.ErrNotFound) {
		return errdef.Field("repository", "Invalid hyperlink - Object does not exist.")
	} else if err != nil {
		return err
	}
	return nil
}

func (s *Schedule) row() *scheduleRow {
	return &scheduleRow{ID: s.ID, Name: s.Name, RemoteID: s.RemoteID, RepositoryID: s.RepositoryID, Mirror: s.Mirror,
		IntervalSeconds: int64(s.Interval / time.Second), NextRun: s.NextRun, LastRun: s.LastRun, LastTaskID: s.LastTaskID,
		Skipped: s.Skipped, RepositoryKey: s.RepositoryKey, RemoteKey: s.RemoteKey, CreatedAt: s.CreatedAt}
}

// CreateSchedule validates s, fills in its ID, CreatedAt and defaults, and
// stores it. Bad fields are *errdef.FieldError (a missing remote or
// repository too); a taken name is one wrapping errdef.ErrConflict.
func (st *Store) CreateSchedule(ctx context.Context, s *Schedule) error {
	now := stamp(time.Now())
	if err := s.validate(now); err != nil {
		return err
	}
	s.ID, s.CreatedAt, s.LastRun, s.LastTaskID, s.Skipped = uuid.NewString(), now, nil, "", 0
	err := st.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := checkLinks(ctx, tx, s); err != nil {
			return err
		}
		_, err := tx.NewInsert().Model(s.row()).Exec(ctx)
		return err
	})
	if err != nil {
		s.ID = ""
		if db.IsUniqueViolation(err) {
			return errdef.FieldConflict("name", "A schedule named %q already exists.", s.Name)
		}
		return err
	}
	return nil
}

// GetSchedule returns the schedule with the given id.
func (st *Store) GetSchedule(ctx context.Context, id string) (*Schedule, error) {
	var r scheduleRow
	if err := st.db.NewSelect().Model(&r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "schedule %q", id)
	}
	return r.schedule(), nil
}

// ScheduleFilter selects schedules in ListSchedules. Limit <= 0 means 100;
// it is capped at 1000.
type ScheduleFilter struct {
	// Name is an exact name; RemoteID and RepositoryID keep the schedules
	// of one remote or repository. Empty fields select everything.
	Name, RemoteID, RepositoryID string
	Limit, Offset                int
}

// ListSchedules returns schedules ordered by name, with the total count
// matching f.
func (st *Store) ListSchedules(ctx context.Context, f ScheduleFilter) ([]Schedule, int, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, 0, errdef.Field("limit", "limit and offset must not be negative")
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	var rows []scheduleRow
	q := st.db.NewSelect().Model(&rows).Order("name").Limit(int64(min(f.Limit, 1000))).Offset(int64(f.Offset))
	for col, v := range map[string]string{"name": f.Name, "remote_id": f.RemoteID, "repository_id": f.RepositoryID} {
		if v != "" {
			q = q.Where("? = ?", bun.Ident(col), v)
		}
	}
	n, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list schedules: %w", err)
	}
	out := make([]Schedule, len(rows))
	for i := range rows {
		out[i] = *rows[i].schedule()
	}
	return out, int(n), nil
}

// UpdateSchedule validates s and replaces the stored schedule with the
// same ID: name, remote, repository, mirror, interval and next run. What
// the dispatcher records (last run and task, skips) and CreatedAt are
// kept as stored.
func (st *Store) UpdateSchedule(ctx context.Context, s *Schedule) error {
	if err := s.validate(stamp(time.Now())); err != nil {
		return err
	}
	err := st.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var cur scheduleRow
		if err := tx.NewSelect().Model(&cur).Where("id = ?", s.ID).Scan(ctx); err != nil {
			return notFound(err, "schedule %q", s.ID)
		}
		if err := checkLinks(ctx, tx, s); err != nil {
			return err
		}
		s.LastRun, s.LastTaskID, s.Skipped, s.CreatedAt = cur.LastRun, cur.LastTaskID, cur.Skipped, cur.CreatedAt
		_, err := tx.NewUpdate().Model(s.row()).WherePK().
			Column("name", "remote_id", "repository_id", "mirror", "interval_seconds", "next_run", "repository_key", "remote_key").Exec(ctx)
		return err
	})
	if db.IsUniqueViolation(err) {
		return errdef.FieldConflict("name", "A schedule named %q already exists.", s.Name)
	}
	if err != nil {
		return err
	}
	got, err := st.GetSchedule(ctx, s.ID)
	if err == nil {
		*s = *got
	}
	return err
}

// DeleteSchedule deletes a schedule; syncs it enqueued are left alone.
func (st *Store) DeleteSchedule(ctx context.Context, id string) error {
	res, err := st.db.NewDelete().Model((*scheduleRow)(nil)).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("%w: schedule %q", errdef.ErrNotFound, id)
	}
	return nil
}

// Dispatched is what one DispatchSchedules call did.
type Dispatched struct {
	// Enqueued are the syncs enqueued; Skipped counts periods skipped
	// because the previous sync had not finished.
	Enqueued []*task.Task
	Skipped  int
}

// nextPeriod returns the first start of a period after now, periods of
// length every starting at from.
func nextPeriod(from time.Time, every time.Duration, now time.Time) time.Time {
	if now.Before(from) {
		return from
	}
	return from.Add((now.Sub(from)/every + 1) * every)
}

// DispatchSchedules enqueues the syncs of the schedules due at now (at
// most 100 a call) and moves their NextRun on to the next period after
// now. A schedule whose last sync is still waiting or running has this
// period skipped. Any number of processes may call it at once on one
// database: each period of each schedule is dispatched by exactly one
// call, because a call moves NextRun on only if it is still what that
// call read, in the transaction that enqueues the sync. Task Runners call
// it every second (see mooring.NewRunner).
func (st *Store) DispatchSchedules(ctx context.Context, now time.Time) (Dispatched, error) {
	now = stamp(now)
	// Look first without a transaction, so that an idle poll takes no
	// write lock.
	n, err := st.db.NewSelect().Model((*scheduleRow)(nil)).Where("next_run <= ?", now).Limit(1).Count(ctx)
	if err != nil || n == 0 {
		return Dispatched{}, err
	}
	var out Dispatched
	err = st.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		out = Dispatched{}
		var due []scheduleRow
		if err := tx.NewSelect().Model(&due).Where("next_run <= ?", now).Order("next_run").Limit(100).Scan(ctx); err != nil {
			return err
		}
		tasks := task.NewStore(tx)
		for i := range due {
			if err := dispatch(ctx, tx, tasks, &due[i], now, &out); err != nil {
				return fmt.Errorf("dispatch schedule %q: %w", due[i].Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return Dispatched{}, err
	}
	return out, nil
}

// dispatch claims the period of one due schedule and enqueues its sync,
// or skips it.
func dispatch(ctx context.Context, tx bun.Tx, tasks *task.Store, sc *scheduleRow, now time.Time, out *Dispatched) error {
	next := nextPeriod(sc.NextRun.UTC(), time.Duration(sc.IntervalSeconds)*time.Second, now)
	res, err := tx.NewUpdate().Model((*scheduleRow)(nil)).Set("next_run = ?", stamp(next)).
		Where("id = ? AND next_run = ?", sc.ID, sc.NextRun).Exec(ctx)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // another dispatcher took this period
	}
	if sc.LastTaskID != "" {
		last, err := tasks.Get(ctx, sc.LastTaskID)
		if err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return err
		}
		if err == nil && !last.State.Finished() {
			out.Skipped++
			_, err := tx.NewUpdate().Model((*scheduleRow)(nil)).Set("skipped = skipped + 1").Where("id = ?", sc.ID).Exec(ctx)
			return err
		}
	}
	t, err := EnqueueSync(ctx, tasks, SyncArgs{Remote: sc.RemoteID, Repository: sc.RepositoryID, Mirror: sc.Mirror}, sc.RepositoryKey, sc.RemoteKey)
	if err != nil {
		return err
	}
	out.Enqueued = append(out.Enqueued, t)
	_, err = tx.NewUpdate().Model((*scheduleRow)(nil)).Set("last_run = ?, last_task_id = ?", now, t.ID).Where("id = ?", sc.ID).Exec(ctx)
	return err
}
