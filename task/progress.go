package task

import (
	"slices"
	"sync"
)

// Progress is a running task's view of its own progress reports and created
// resources. Its methods are safe for concurrent use and cheap: the Runner
// writes changes to the database in the background — counts at most every
// 500ms, a report starting or completing and a recorded resource at once —
// and finally together with the task's outcome.
//
// The zero Progress records in memory only, which suits handler unit tests
// and callers outside a Runner: they read the outcome with Reports. A nil
// *Progress records nothing: its Report returns a nil *Report, whose
// methods do nothing, so code that reports progress need not check.
type Progress struct {
	mu      sync.Mutex
	reports []ProgressReport
	created []string
	dirty   bool
	urgent  chan struct{} // nil outside a Runner
}

func newProgress() *Progress {
	return &Progress{urgent: make(chan struct{}, 1)}
}

// changed marks the progress for writing; an urgent change is written
// without waiting for the throttle. Call with p.mu held.
func (p *Progress) changed(urgent bool) {
	p.dirty = true
	if urgent {
		select {
		case p.urgent <- struct{}{}:
		default:
		}
	}
}

// Report starts a progress report in state running and returns a handle to
// update it. code identifies the report (Pulp uses dotted codes such as
// "sync.downloading.artifacts"); total is the expected count, 0 if unknown.
// If the task already has a report with this code, Report updates its
// message and total and returns it.
func (p *Progress) Report(code, message string, total int64) *Report {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.reports {
		if p.reports[i].Code == code {
			p.reports[i].Message, p.reports[i].Total = message, total
			p.changed(false)
			return &Report{p: p, i: i}
		}
	}
	p.reports = append(p.reports, ProgressReport{Code: code, Message: message, State: StateRunning, Total: total})
	p.changed(true)
	return &Report{p: p, i: len(p.reports) - 1}
}

// Created records href as a resource the task created, such as a new
// repository version. It appears in Task.CreatedResources.
func (p *Progress) Created(href string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.created = append(p.created, href)
	p.changed(true)
}

// Reports returns a copy of the progress reports, in the order they were
// started; nil for a nil Progress.
func (p *Progress) Reports() []ProgressReport {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reports)
}

// pending returns the reports and created resources if they changed since
// the last call.
func (p *Progress) pending() (reports []ProgressReport, created []string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.dirty {
		return nil, nil, false
	}
	p.dirty = false
	return slices.Clone(p.reports), slices.Clone(p.created), true
}

// redirty marks the progress for writing again after a failed write.
func (p *Progress) redirty() {
	p.mu.Lock()
	p.dirty = true
	p.mu.Unlock()
}

// final ends every report still running in the task's final state and
// returns the reports and created resources to store with the outcome.
func (p *Progress) final(s State) ([]ProgressReport, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.reports {
		if p.reports[i].State == StateRunning {
			p.reports[i].State = s
		}
	}
	reports, created := slices.Clone(p.reports), slices.Clone(p.created)
	if reports == nil {
		reports = []ProgressReport{}
	}
	if created == nil {
		created = []string{}
	}
	return reports, created
}

// Report is a handle on one of a task's progress reports. The methods of a
// nil *Report do nothing.
type Report struct {
	p *Progress
	i int
}

func (r *Report) update(urgent bool, f func(*ProgressReport)) {
	if r == nil {
		return
	}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	f(&r.p.reports[r.i])
	r.p.changed(urgent)
}

// Increment adds one to the report's done count.
func (r *Report) Increment() { r.Add(1) }

// Add adds n to the report's done count.
func (r *Report) Add(n int64) {
	r.update(false, func(pr *ProgressReport) { pr.Done += n })
}

// SetTotal sets the number of items the report expects.
func (r *Report) SetTotal(total int64) {
	r.update(false, func(pr *ProgressReport) { pr.Total = total })
}

// Complete marks the report completed. Reports still running when the
// handler returns take the task's final state instead.
func (r *Report) Complete() {
	r.update(true, func(pr *ProgressReport) { pr.State = StateCompleted })
}

// End ends the report in state s (StateFailed, StateCanceled or
// StateCompleted) if it is still running; an ended report keeps its state.
// Work that stops short ends its reports so that a caller outside a Runner
// sees none left running; in a Runner, reports still running when the
// handler returns end in the task's final state anyway.
func (r *Report) End(s State) {
	r.update(true, func(pr *ProgressReport) {
		if pr.State == StateRunning {
			pr.State = s
		}
	})
}
