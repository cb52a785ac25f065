package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/task"
)

// TaskSync is the name of the task a sync request enqueues.
const TaskSync = "sync"

// RegisterTasks registers the server's task handlers on a Runner: "sync"
// runs remote.Syncer with its progress recorded on the task.
func (s *Server) RegisterTasks(r *task.Runner) {
	syncer := &remote.Syncer{Repos: s.repos, Blobs: s.blobs, Logger: s.log}
	r.Register(TaskSync, func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args syncArgs
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return fmt.Errorf("decode sync arguments: %w", err)
		}
		rm, err := s.remotes.Get(ctx, args.Remote)
		if err != nil {
			return err
		}
		res, err := syncer.Sync(ctx, rm, args.Repository, remote.SyncOptions{Mirror: args.Mirror, Progress: progressAdapter(p)})
		if err != nil {
			return err
		}
		if res.Version != nil {
			p.Created(versionHref(res.Version.RepositoryID, res.Version.Number))
		}
		return nil
	})
}

// progressAdapter records remote.Report values as task progress reports,
// one per code, turning absolute Done counts into increments.
func progressAdapter(p *task.Progress) func(remote.Report) {
	var mu sync.Mutex
	type state struct {
		r    *task.Report
		done int64
	}
	reports := map[string]*state{}
	return func(rep remote.Report) {
		mu.Lock()
		defer mu.Unlock()
		st, ok := reports[rep.Code]
		if !ok {
			st = &state{r: p.Report(rep.Code, rep.Message, int64(rep.Total))}
			reports[rep.Code] = st
		} else {
			st.r.SetTotal(int64(rep.Total))
		}
		if d := int64(rep.Done) - st.done; d != 0 {
			st.r.Add(d)
			st.done = int64(rep.Done)
		}
		if string(rep.State) == string(task.StateCompleted) {
			st.r.Complete()
		}
	}
}
