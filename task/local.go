package task

import (
	"context"
	"sync"
)

// In-process shortcuts. The database is the source of truth and Runners
// poll it, so these only make things faster within one process: an Enqueue
// wakes idle Runners, a Cancel reaches the handler without waiting for the
// next poll. They are keyed by nothing but task and worker IDs (UUIDs), so
// Runners on different databases in one process do not disturb each other
// beyond a spurious wake-up.
var local = struct {
	sync.Mutex
	wakers  map[chan struct{}]struct{}
	running map[string]context.CancelCauseFunc // task ID -> its handler's cancel
	workers map[string]struct{}                // worker IDs of Runners in this process
}{
	wakers:  map[chan struct{}]struct{}{},
	running: map[string]context.CancelCauseFunc{},
	workers: map[string]struct{}{},
}

// notify wakes every Runner of this process waiting for work.
func notify() {
	local.Lock()
	defer local.Unlock()
	for c := range local.wakers {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func subscribe() chan struct{} {
	c := make(chan struct{}, 1)
	local.Lock()
	local.wakers[c] = struct{}{}
	local.Unlock()
	return c
}

func unsubscribe(c chan struct{}) {
	local.Lock()
	delete(local.wakers, c)
	local.Unlock()
}

// cancelLocal cancels the handler of task id if it runs in this process.
func cancelLocal(id string) {
	local.Lock()
	cancel := local.running[id]
	local.Unlock()
	if cancel != nil {
		cancel(ErrCanceled)
	}
}

func trackLocal(id string, cancel context.CancelCauseFunc) {
	local.Lock()
	local.running[id] = cancel
	local.Unlock()
}

func untrackLocal(id string) {
	local.Lock()
	delete(local.running, id)
	local.Unlock()
}

func addLocalWorker(id string) {
	local.Lock()
	local.workers[id] = struct{}{}
	local.Unlock()
}

func removeLocalWorker(id string) {
	local.Lock()
	delete(local.workers, id)
	local.Unlock()
}

func isLocalWorker(id string) bool {
	local.Lock()
	defer local.Unlock()
	_, ok := local.workers[id]
	return ok
}
