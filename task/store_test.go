package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/task"
)

func TestEnqueueGetList(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)

		type syncArgs struct {
			Remote string `json:"remote"`
			Mirror bool   `json:"mirror"`
		}
		enq, err := s.Enqueue(ctx, task.Spec{Name: "sync", Args: syncArgs{"r1", true}, Resources: []string{"repo-1", "remote-1", "repo-1"}})
		if err != nil {
			t.Fatal(err)
		}
		if enq.State != task.StateWaiting || enq.StartedAt != nil || enq.FinishedAt != nil || enq.WorkerID != "" {
			t.Errorf("new task = %+v, want waiting and unstarted", enq)
		}
		if want := []string{"repo-1", "remote-1"}; !reflect.DeepEqual(enq.Resources, want) {
			t.Errorf("resources = %q, want %q (duplicates dropped, order kept)", enq.Resources, want)
		}
		got, err := s.Get(ctx, enq.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, enq) {
			t.Errorf("Get returned\n%+v\nEnqueue returned\n%+v", got, enq)
		}
		var args syncArgs
		if err := json.Unmarshal(got.Args, &args); err != nil || args != (syncArgs{"r1", true}) {
			t.Errorf("args read back = %+v, %v", args, err)
		}

		raw, err := s.Enqueue(ctx, task.Spec{Name: "delete", Args: json.RawMessage(`{"id":"x"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if string(raw.Args) != `{"id":"x"}` {
			t.Errorf("raw args stored as %s", raw.Args)
		}
		for range 3 {
			if _, err := s.Enqueue(ctx, task.Spec{Name: "sync"}); err != nil {
				t.Fatal(err)
			}
		}

		all, total, err := s.List(ctx, task.Filter{})
		if err != nil || total != 5 || len(all) != 5 {
			t.Fatalf("List = %d tasks, total %d, %v; want 5", len(all), total, err)
		}
		if all[4].ID != enq.ID || all[3].ID != raw.ID {
			t.Errorf("List is not newest first: last two are %s, %s", all[3].ID, all[4].ID)
		}
		page, total, err := s.List(ctx, task.Filter{Name: "sync", Limit: 2, Offset: 2})
		if err != nil || total != 4 || len(page) != 2 || page[1].ID != enq.ID {
			t.Errorf("List(name=sync, limit 2, offset 2) = %d tasks, total %d, %v", len(page), total, err)
		}
		tail, total, err := s.List(ctx, task.Filter{Offset: 4})
		if err != nil || total != 5 || len(tail) != 1 || tail[0].ID != enq.ID {
			t.Errorf("List(offset 4) = %d tasks, total %d, %v", len(tail), total, err)
		}
		none, total, err := s.List(ctx, task.Filter{State: task.StateRunning})
		if err != nil || total != 0 || len(none) != 0 {
			t.Errorf("List(running) = %d, %d, %v; want nothing", len(none), total, err)
		}

		_, err = s.Get(ctx, "00000000-0000-0000-0000-000000000000")
		wantErr(t, err, errdef.ErrNotFound)
		_, _, err = s.List(ctx, task.Filter{State: "sleeping"})
		wantErr(t, err, errdef.ErrInvalid)
		for _, bad := range []task.Spec{
			{},
			{Name: "sync", Resources: []string{""}},
			{Name: "sync", Args: json.RawMessage(`{`)},
			{Name: "sync", Args: func() {}},
		} {
			_, err := s.Enqueue(ctx, bad)
			wantErr(t, err, errdef.ErrInvalid)
		}
	})
}

func TestEnqueueInTransaction(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		var id string
		rollback := errors.New("roll back")
		err := d.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			tk, err := task.NewStore(tx).Enqueue(ctx, task.Spec{Name: "sync", Resources: []string{"repo"}})
			if err != nil {
				return err
			}
			id = tk.ID
			return rollback
		})
		if err != rollback {
			t.Fatal(err)
		}
		_, err = s.Get(ctx, id)
		wantErr(t, err, errdef.ErrNotFound)
	})
}

func TestCancelWaiting(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := migrated(t, d)
		first, err := s.Enqueue(ctx, task.Spec{Name: "sync", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.Enqueue(ctx, task.Spec{Name: "sync", Resources: []string{"repo"}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Cancel(ctx, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != task.StateCanceled || got.FinishedAt == nil || got.StartedAt != nil {
			t.Errorf("canceled waiting task = %+v", got)
		}
		_, err = s.Cancel(ctx, first.ID)
		wantErr(t, err, errdef.ErrConflict)
		_, err = s.Cancel(ctx, "no-such-task")
		wantErr(t, err, errdef.ErrNotFound)

		// The canceled task no longer holds the resource: the next one runs.
		r := task.NewRunner(d, fast(1))
		ran := make(chan string, 2)
		r.Register("sync", func(ctx context.Context, tk *task.Task, p *task.Progress) error {
			ran <- tk.ID
			return nil
		})
		start(t, r)
		if done := waitFinished(t, s, second.ID); done.State != task.StateCompleted {
			t.Fatalf("task after a canceled one ended %s (%s)", done.State, done.Error)
		}
		if id := <-ran; id != second.ID {
			t.Errorf("ran %s, want only %s", id, second.ID)
		}
		if got, _ := s.Get(ctx, first.ID); got.State != task.StateCanceled {
			t.Errorf("canceled task became %s", got.State)
		}
	})
}
