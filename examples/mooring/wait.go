package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/mooring-dev/mooring/server/client"
)

// pollInterval is how often a waited-for task is read.
const pollInterval = 250 * time.Millisecond

// started is what a command that enqueued a task does next: with wait,
// follow the task to its end; without, say how to.
func (a *app) started(ctx context.Context, href string, wait bool) error {
	if wait {
		return a.wait(ctx, href)
	}
	if a.json {
		return a.printJSON(client.TaskRef{Task: href})
	}
	a.printf("Started task %s.\nFollow it with: mooring task show %s --wait\n", taskID(href), taskID(href))
	return nil
}

// view shows a task's progress as it is polled.
type view interface {
	update(t *client.Task)
	// stop stops showing, leaving what is shown; finished says the task
	// has ended.
	stop(t *client.Task, finished bool)
}

// newView returns progress bars on a terminal, else plain lines; both on
// stderr, so that stdout keeps only the result.
func (a *app) newView() view {
	if isTerminal(os.Stderr) {
		return newBarView(os.Stderr)
	}
	return &lineView{w: a.errOut, last: map[string]lineState{}}
}

// wait follows the task at href until it ends, showing its progress, and
// returns the task's error when it did not complete. Ctrl-C asks, on a
// terminal, whether to cancel it; a second Ctrl-C, or no terminal to ask
// on, leaves the task running.
func (a *app) wait(ctx context.Context, href string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	v := a.newView()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var t *client.Task
	for {
		var err error
		if t, err = a.c.Task(ctx, href); err != nil {
			v.stop(nil, false)
			return err
		}
		v.update(t)
		if t.Finished() {
			break
		}
		select {
		case <-ctx.Done():
			v.stop(t, false)
			return ctx.Err()
		case <-sigs:
			v.stop(t, false)
			if !isTerminal(a.in) {
				return &interrupted{href}
			}
			switch a.ask(sigs, fmt.Sprintf("\nCancel task %s (%s)? [y/N] ", t.Name, taskID(href))) {
			case answerYes:
				if _, err := a.c.CancelTask(ctx, href); err != nil {
					fmt.Fprintln(a.errOut, "Could not cancel the task:", err)
				} else {
					fmt.Fprintln(a.errOut, "Canceling…")
				}
			case answerInterrupt:
				return &interrupted{href}
			}
			v = a.newView()
		case <-tick.C:
		}
	}
	v.stop(t, true)
	return a.finished(ctx, t)
}

type answer int

const (
	answerNo answer = iota
	answerYes
	answerInterrupt
)

// ask prompts on stderr and reads a line of stdin; a Ctrl-C meanwhile is
// answerInterrupt.
func (a *app) ask(sigs <-chan os.Signal, prompt string) answer {
	fmt.Fprint(a.errOut, prompt)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(a.in).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if r := strings.ToLower(strings.TrimSpace(s)); r == "y" || r == "yes" {
			return answerYes
		}
		return answerNo
	case <-sigs:
		fmt.Fprintln(a.errOut)
		return answerInterrupt
	}
}

// finished reports a task that ended: what it made, or its error.
func (a *app) finished(ctx context.Context, t *client.Task) error {
	if a.json {
		if err := a.printJSON(t); err != nil {
			return err
		}
		return t.Err()
	}
	if err := t.Err(); err != nil {
		return err
	}
	took := ""
	if t.StartedAt != nil && t.FinishedAt != nil {
		took = " in " + t.FinishedAt.Sub(*t.StartedAt).Round(time.Millisecond).String()
	}
	a.printf("Task %s completed%s.\n", t.Name, took)
	cache := map[string]string{}
	for _, res := range t.CreatedResources {
		if strings.Contains(res, "/versions/") {
			res = versionLabel(a, ctx, cache, res)
		}
		a.printf("Created %s\n", res)
	}
	return nil
}

// barView shows one bar per progress report, with counts (bytes for
// reports counting bytes), rate and ETA, and a line for the task's state.
type barView struct {
	p      *mpb.Progress
	status *mpb.Bar
	state  string
	bars   map[string]*mpb.Bar
	order  []string
}

func newBarView(w io.Writer) *barView {
	return &barView{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(120*time.Millisecond)), bars: map[string]*mpb.Bar{}}
}

func (v *barView) update(t *client.Task) {
	if v.status == nil {
		v.status = v.p.New(0, mpb.SpinnerStyle(), mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string { return "Task " + t.Name + " " + taskID(t.Href)[:8] + ": " + v.state }),
		), mpb.BarPriority(-1), mpb.BarFillerClearOnComplete())
	}
	v.state = t.State
	for _, r := range t.ProgressReports {
		b, ok := v.bars[r.Code]
		if !ok {
			b = v.newBar(r)
			v.bars[r.Code] = b
			v.order = append(v.order, r.Code)
		}
		switch r.State {
		case client.TaskRunning, client.TaskWaiting:
			// A running report is never shown complete, even when its
			// count has caught up with a total that may still grow.
			b.SetTotal(max(r.Total, r.Done+1), false)
			b.SetCurrent(r.Done)
		case client.TaskCompleted:
			b.SetCurrent(r.Done)
			b.SetTotal(-1, true)
		default:
			b.SetCurrent(r.Done)
			b.Abort(false)
		}
	}
}

func (v *barView) newBar(r client.ProgressReport) *mpb.Bar {
	counters, speed := decor.CountersNoUnit("%d / %d", decor.WCSyncWidth), decor.AverageSpeed(0, "%.1f/s", decor.WCSyncWidth)
	if strings.HasSuffix(r.Code, "bytes") {
		counters = decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncWidth)
		speed = decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncWidth)
	}
	return v.p.New(max(r.Total, 1), mpb.BarStyle().Lbound("[").Rbound("]"),
		mpb.PrependDecorators(decor.Name(r.Message, decor.WCSyncSpaceR), counters),
		mpb.AppendDecorators(
			decor.OnAbort(decor.OnComplete(decor.Percentage(decor.WCSyncSpace), " done"), " "+r.State),
			decor.OnComplete(speed, ""),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), ""),
		))
}

func (v *barView) stop(t *client.Task, finished bool) {
	if t != nil {
		v.state = t.State
	}
	if finished && t != nil {
		if v.status != nil {
			v.status.SetTotal(-1, true)
		}
		for _, code := range v.order {
			if t.State == client.TaskCompleted {
				v.bars[code].SetTotal(-1, true)
			} else {
				v.bars[code].Abort(false)
			}
		}
		v.p.Wait()
		return
	}
	v.p.Shutdown()
}

// lineView prints a line when the task's state or a report changes, at
// most once a second per running report.
type lineView struct {
	w     io.Writer
	state string
	last  map[string]lineState
}

type lineState struct {
	done  int64
	state string
	at    time.Time
}

func (v *lineView) update(t *client.Task) {
	if t.State != v.state {
		v.state = t.State
		fmt.Fprintf(v.w, "Task %s %s: %s\n", t.Name, taskID(t.Href), t.State)
	}
	for _, r := range t.ProgressReports {
		prev, seen := v.last[r.Code]
		if seen && prev.state == r.State && (prev.done == r.Done || time.Since(prev.at) < time.Second) {
			continue
		}
		v.last[r.Code] = lineState{done: r.Done, state: r.State, at: time.Now()}
		total := "?"
		if r.Total > 0 || r.State != client.TaskRunning {
			total = fmt.Sprint(max(r.Total, r.Done))
		}
		fmt.Fprintf(v.w, "  %s: %d/%s %s\n", r.Message, r.Done, total, r.State)
	}
}

func (v *lineView) stop(t *client.Task, finished bool) {
	if finished && t != nil {
		v.update(t)
	}
}
