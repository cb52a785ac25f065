package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestTaskSchedules: a sync schedule made through the REST API syncs on
// its own once a task runner runs, records its last and next dispatch,
// and refuses bad input field by field.
func TestTaskSchedules(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		upstream := regtest.StartInProcess(t)
		if _, err := regtest.PushImage(context.Background(), upstream, "busybox", "v1", regtest.ImageOpts{Seed: "sched", Layers: 1}); err != nil {
			t.Fatal(err)
		}
		r := e.call("POST", "/pulp/api/v3/remotes/docker/docker/", map[string]any{"name": "busybox", "upstream_name": "busybox", "url": "http://" + upstream})
		if r.status != http.StatusCreated {
			t.Fatalf("create remote: %d %s", r.status, r.body)
		}
		remoteHref := r.json(t)["_href"].(string)
		_, repoHref := e.createRepo("foo")

		const path = "/pulp/api/v3/task-schedules/"
		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"remote": remoteHref, "repository": repoHref, "dispatch_interval": "1h"}, "name"},
			{map[string]any{"name": "n", "remote": remoteHref, "repository": repoHref, "dispatch_interval": "soon"}, "dispatch_interval"},
			{map[string]any{"name": "n", "remote": remoteHref, "repository": repoHref, "dispatch_interval": 0}, "dispatch_interval"},
			{map[string]any{"name": "n", "remote": remoteHref, "repository": repoHref}, "dispatch_interval"},
			{map[string]any{"name": "n", "remote": "/nowhere/", "repository": repoHref, "dispatch_interval": "1h"}, "remote"},
			{map[string]any{"name": "n", "remote": remoteHref, "repository": "/pulp/api/v3/repositories/00000000-0000-0000-0000-000000000000/", "dispatch_interval": "1h"}, "repository"},
			{map[string]any{"name": "n", "remote": remoteHref, "repository": repoHref, "dispatch_interval": "1h", "next_dispatch": "tomorrow"}, "next_dispatch"},
		} {
			if r := e.call("POST", path, c.body); r.status != http.StatusBadRequest || r.json(t)[c.field] == nil {
				t.Errorf("POST %v: %d %s, want 400 about %s", c.body, r.status, r.body, c.field)
			}
		}

		r = e.call("POST", path, map[string]any{"name": "nightly", "remote": remoteHref, "repository": repoHref, "dispatch_interval": "24h"})
		if r.status != http.StatusCreated {
			t.Fatalf("create schedule: %d %s", r.status, r.body)
		}
		sched := r.json(t)
		href := sched["_href"].(string)
		if sched["dispatch_interval"] != "24h0m0s" || sched["last_task"] != nil || sched["task_name"] != "sync" {
			t.Errorf("created %v", sched)
		}
		if r := e.call("POST", path, map[string]any{"name": "nightly", "remote": remoteHref, "repository": repoHref, "dispatch_interval": 60}); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "already exists") {
			t.Errorf("a second schedule named nightly: %d %s", r.status, r.body)
		}
		if r := e.call("GET", path+"?repository="+repoHref, nil); r.status != http.StatusOK || r.json(t)["count"] != 1.0 {
			t.Errorf("list by repository: %d %s", r.status, r.body)
		}

		// Once a runner runs, the schedule's first sync is dispatched and
		// makes version 1; the next is a day away.
		e.runner(t)
		var tk map[string]any
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			sched = e.call("GET", href, nil).json(t)
			if last, _ := sched["last_task"].(string); last != "" {
				tk = e.waitTask(last)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the schedule never dispatched: %v", sched)
			}
		}
		if tk["state"] != "completed" || tk["name"] != "sync" {
			t.Fatalf("scheduled sync: %v", tk)
		}
		if v := e.call("GET", repoHref+"versions/1/", nil); v.status != http.StatusOK {
			t.Errorf("the scheduled sync made no version 1: %d", v.status)
		}
		next, _ := time.Parse(time.RFC3339, sched["next_dispatch"].(string))
		if d := time.Until(next); d < 23*time.Hour || sched["last_dispatch"] == nil {
			t.Errorf("after the first sync: next dispatch in %v, last %v", d, sched["last_dispatch"])
		}

		r = e.call("PATCH", href, map[string]any{"dispatch_interval": "1h", "mirror": true})
		if r.status != http.StatusOK || r.json(t)["dispatch_interval"] != "1h0m0s" || r.json(t)["mirror"] != true || r.json(t)["last_task"] == nil {
			t.Errorf("PATCH: %d %s", r.status, r.body)
		}
		if r := e.call("DELETE", href, nil); r.status != http.StatusNoContent {
			t.Errorf("DELETE: %d %s", r.status, r.body)
		}
		if r := e.call("GET", href, nil); r.status != http.StatusNotFound {
			t.Errorf("GET after DELETE: %d", r.status)
		}
	})
}
