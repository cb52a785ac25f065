package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring/remote"
)

func scheduleHref(id string) string { return APIRoot + "task-schedules/" + id + "/" }

var remoteHrefRe = regexp.MustCompile(`^/pulp/api/v3/remotes/docker/docker/([0-9a-f-]{36})/$`)

func parseRemoteHref(path string) (string, bool) {
	m := remoteHrefRe.FindStringSubmatch(path)
	if m == nil || !isUUID(m[1]) {
		return "", false
	}
	return m[1], true
}

// scheduleJSON is a sync schedule, in the spirit of Pulp's task
// schedules: what it runs, every dispatch_interval, and when it did and
// will.
type scheduleJSON struct {
	Href         string  `json:"_href"`
	Created      string  `json:"_created"`
	Name         string  `json:"name"`
	TaskName     string  `json:"task_name"`
	Remote       string  `json:"remote"`
	Repository   string  `json:"repository"`
	Mirror       bool    `json:"mirror"`
	Interval     string  `json:"dispatch_interval"`
	NextDispatch string  `json:"next_dispatch"`
	LastDispatch *string `json:"last_dispatch"`
	LastTask     *string `json:"last_task"`
	Skipped      int64   `json:"skipped_dispatches"`
}

func scheduleView(s *remote.Schedule) scheduleJSON {
	out := scheduleJSON{
		Href: scheduleHref(s.ID), Created: ts(s.CreatedAt), Name: s.Name, TaskName: remote.SyncTask,
		Remote: remoteHref(s.RemoteID), Repository: repoHref(s.RepositoryID), Mirror: s.Mirror,
		Interval: s.Interval.String(), NextDispatch: ts(s.NextRun), Skipped: s.Skipped,
	}
	if s.LastRun != nil {
		v := ts(*s.LastRun)
		out.LastDispatch = &v
	}
	if s.LastTaskID != "" {
		v := taskHref(s.LastTaskID)
		out.LastTask = &v
	}
	return out
}

// duration reads a period: a Go duration ("1h30m") or a number of seconds.
func (b *body) duration(field string, required bool) *time.Duration {
	if !b.has(field) {
		if required {
			b.required(field)
		}
		return nil
	}
	raw := strings.TrimSpace(string(b.fields[field]))
	var s string
	if json.Unmarshal(b.fields[field], &s) == nil {
		raw = strings.TrimSpace(s)
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		d := time.Duration(n) * time.Second
		return &d
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		b.fail(field, `Give a duration such as "24h" or "1h30m", or a number of seconds.`)
		return nil
	}
	return &d
}

// timestamp reads an RFC 3339 date and time.
func (b *body) timestamp(field string) *time.Time {
	s := b.str(field, false, false)
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		b.fail(field, "Datetime has wrong format. Use RFC 3339, such as 2030-01-31T02:00:00Z.")
		return nil
	}
	return &t
}

// readSchedule applies a request body to sc: every field for POST and PUT,
// those sent for PATCH.
func readSchedule(r *http.Request, sc *remote.Schedule) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	name := b.str("name", true, false)
	remoteID := b.href("remote", true, false, parseRemoteHref)
	repoID := b.href("repository", true, false, parseRepoHref)
	mirror := b.boolean("mirror")
	interval := b.duration("dispatch_interval", true)
	next := b.timestamp("next_dispatch")
	if err := b.done(); err != nil {
		return err
	}
	if r.Method != http.MethodPatch {
		sc.Mirror, sc.NextRun = false, time.Time{}
	}
	for _, f := range []struct {
		dst *string
		v   *string
	}{{&sc.Name, name}, {&sc.RemoteID, remoteID}, {&sc.RepositoryID, repoID}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if mirror != nil {
		sc.Mirror = *mirror
	}
	if interval != nil {
		sc.Interval = *interval
	}
	if next != nil {
		sc.NextRun = *next
	}
	// Syncs a schedule enqueues hold the same resources as those the REST
	// API enqueues, so the two never run into one repository at once.
	sc.RepositoryKey, sc.RemoteKey = repoHref(sc.RepositoryID), remoteHref(sc.RemoteID)
	return nil
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := remote.ScheduleFilter{Name: q.str("name"), Limit: limit, Offset: offset}
	for _, p := range []struct {
		param string
		dst   *string
		parse func(string) (string, bool)
	}{{"remote", &f.RemoteID, parseRemoteHref}, {"repository", &f.RepositoryID, parseRepoHref}} {
		if v := q.str(p.param); v != "" {
			id, ok := p.parse(v)
			if !ok {
				q.errs[p.param] = append(q.errs[p.param], "Invalid hyperlink - No URL match.")
			}
			*p.dst = id
		}
	}
	if err := q.done(); err != nil {
		return err
	}
	list, n, err := s.remotes.ListSchedules(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]scheduleJSON, len(list))
	for i := range list {
		out[i] = scheduleView(&list[i])
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) error {
	sc := new(remote.Schedule)
	if err := readSchedule(r, sc); err != nil {
		return err
	}
	if err := s.remotes.CreateSchedule(r.Context(), sc); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, scheduleView(sc))
	return nil
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.remotes.GetSchedule(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, scheduleView(sc))
	return nil
}

func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.remotes.GetSchedule(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if err := readSchedule(r, sc); err != nil {
		return err
	}
	if err := s.remotes.UpdateSchedule(r.Context(), sc); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, scheduleView(sc))
	return nil
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	if err := s.remotes.DeleteSchedule(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
