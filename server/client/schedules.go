package client

import (
	"context"
	"net/http"
	"time"
)

// Schedule is a sync run every DispatchInterval.
type Schedule struct {
	Href             string     `json:"_href"`
	Created          time.Time  `json:"_created"`
	Name             string     `json:"name"`
	TaskName         string     `json:"task_name"`
	Remote           string     `json:"remote"`
	Repository       string     `json:"repository"`
	Mirror           bool       `json:"mirror"`
	DispatchInterval string     `json:"dispatch_interval"`
	NextDispatch     time.Time  `json:"next_dispatch"`
	LastDispatch     *time.Time `json:"last_dispatch"`
	LastTask         *string    `json:"last_task"`
	Skipped          int64      `json:"skipped_dispatches"`
}

// ScheduleRequest creates or changes a schedule; DispatchInterval is a
// duration such as "24h". For PATCH only the fields set are sent.
type ScheduleRequest struct {
	Name             string     `json:"name,omitempty"`
	Remote           string     `json:"remote,omitempty"`
	Repository       string     `json:"repository,omitempty"`
	Mirror           *bool      `json:"mirror,omitempty"`
	DispatchInterval string     `json:"dispatch_interval,omitempty"`
	NextDispatch     *time.Time `json:"next_dispatch,omitempty"`
}

const schedulesPath = APIRoot + "task-schedules/"

// ListSchedules returns a page of sync schedules; filters name, remote
// and repository (hrefs).
func (c *Client) ListSchedules(ctx context.Context, o ListOptions) (*Page[Schedule], error) {
	return list[Schedule](ctx, c, schedulesPath, o)
}

// ScheduleByName returns the schedule named name.
func (c *Client) ScheduleByName(ctx context.Context, name string) (*Schedule, error) {
	return byName[Schedule](ctx, c, schedulesPath, "schedule", name)
}

// Schedule returns the schedule at href.
func (c *Client) Schedule(ctx context.Context, href string) (*Schedule, error) {
	return get[Schedule](ctx, c, href)
}

// CreateSchedule creates a schedule.
func (c *Client) CreateSchedule(ctx context.Context, s ScheduleRequest) (*Schedule, error) {
	return send[Schedule](ctx, c, http.MethodPost, schedulesPath, s)
}

// UpdateSchedule changes the fields s sets (PATCH).
func (c *Client) UpdateSchedule(ctx context.Context, href string, s ScheduleRequest) (*Schedule, error) {
	return send[Schedule](ctx, c, http.MethodPatch, href, s)
}

// DeleteSchedule deletes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, href string) error {
	return c.Do(ctx, http.MethodDelete, href, nil, nil)
}
