package task

import (
	"context"
	"sync"
	"time"
)

// periodic is a job Run runs every interval.
type periodic struct {
	name  string
	every time.Duration
	f     func(ctx context.Context) error
}

// Every has Run call f every d (at once when Run starts, then d after each
// call returns) for as long as Run runs, such as to dispatch schedules.
// f's errors are logged under name. Like Register it panics on an empty
// name, a nil f or a non-positive d; it must be called before Run.
func (r *Runner) Every(name string, d time.Duration, f func(ctx context.Context) error) {
	if name == "" || f == nil || d <= 0 {
		panic("task: Every with an empty name, nil func or non-positive period")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		panic("task: Every called after Run")
	}
	r.periodic = append(r.periodic, periodic{name: name, every: d, f: f})
}

// runPeriodic starts the goroutines of the periodic jobs; they stop when
// ctx is done.
func (r *Runner) runPeriodic(ctx context.Context, wg *sync.WaitGroup) {
	r.mu.Lock()
	jobs := r.periodic
	r.mu.Unlock()
	for _, j := range jobs {
		wg.Go(func() {
			t := time.NewTimer(0)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if err := j.f(ctx); err != nil && ctx.Err() == nil {
					r.log.Warn("periodic job failed", "job", j.name, "worker", r.id, "err", err)
				}
				t.Reset(j.every)
			}
		})
	}
}
