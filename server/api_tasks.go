package server

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring/task"
)

type taskJSON struct {
	Href             string                `json:"_href"`
	Created          string                `json:"_created"`
	Name             string                `json:"name"`
	State            task.State            `json:"state"`
	StartedAt        *string               `json:"started_at"`
	FinishedAt       *string               `json:"finished_at"`
	Error            *taskErrorJSON        `json:"error"`
	ProgressReports  []task.ProgressReport `json:"progress_reports"`
	CreatedResources []string              `json:"created_resources"`
	Reserved         []string              `json:"reserved_resources_record"`
}

type taskErrorJSON struct {
	Description string `json:"description"`
}

func taskView(t *task.Task) taskJSON {
	out := taskJSON{
		Href:             taskHref(t.ID),
		Created:          ts(t.CreatedAt),
		Name:             t.Name,
		State:            t.State,
		ProgressReports:  t.ProgressReports,
		CreatedResources: t.CreatedResources,
		Reserved:         t.Resources,
	}
	if t.StartedAt != nil {
		s := ts(*t.StartedAt)
		out.StartedAt = &s
	}
	if t.FinishedAt != nil {
		s := ts(*t.FinishedAt)
		out.FinishedAt = &s
	}
	if t.Error != "" {
		out.Error = &taskErrorJSON{Description: t.Error}
	}
	return out
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := task.Filter{State: task.State(q.str("state")), Name: q.str("name"), Limit: limit, Offset: offset}
	if f.State != "" && !f.State.Valid() {
		q.errs["state"] = append(q.errs["state"], "Select a valid choice. "+string(f.State)+" is not one of the available choices.")
	}
	if err := q.done(); err != nil {
		return err
	}
	if user := s.scopedUser(r); user != "" {
		f.CreatedBy = &user // users see the tasks they enqueued
	}
	ts, n, err := s.tasks.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]taskJSON, len(ts))
	for i := range ts {
		out[i] = taskView(&ts[i])
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.tasks.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, taskView(t))
	return nil
}

// cancelTask is PATCH {"state": "canceled"}, the only change a task takes.
func (s *Server) cancelTask(w http.ResponseWriter, r *http.Request) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	state := b.str("state", true, false)
	if state == nil && !b.has("state") {
		b.fail("state", "This field is required.")
	}
	if state != nil && *state != string(task.StateCanceled) {
		b.fail("state", `Only "canceled" may be set.`)
	}
	if err := b.done(); err != nil {
		return err
	}
	t, err := s.tasks.Cancel(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, taskView(t))
	return nil
}
