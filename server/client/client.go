// Package client is a typed Go client of Mooring's REST API (Pulp's
// /pulp/api/v3/ shapes), the one the mooring command uses: repositories
// and their versions, remotes and syncs, distributions, content, tasks
// (with waiting and progress), sync schedules, OCI layout export and
// import, repository actions, and status.
//
// Objects are named by their hrefs, as the API names them; the *ByName
// methods find an object's href from its name. Errors the API answers are
// *Error values carrying the status, the detail and the per-field
// messages, and wrapping content/errdef's sentinels (errdef.ErrNotFound
// for a 404, errdef.ErrInvalid for a 400, …), so callers test them with
// errors.Is.
//
//	c := client.New("http://localhost:24817", client.WithBasicAuth("admin", "admin"))
//	repo, err := c.CreateRepository(ctx, client.RepositoryRequest{Name: "foo"})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
)

// APIRoot is the prefix of every REST path.
const APIRoot = "/pulp/api/v3/"

// DefaultURL is where the server listens by default.
const DefaultURL = "http://localhost:24817"

// Client talks to one Mooring REST API. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	username string
	password string
	http     *http.Client
	agent    string
}

// Option configures a Client.
type Option func(*Client)

// WithBasicAuth sends HTTP Basic credentials with every request.
func WithBasicAuth(username, password string) Option {
	return func(c *Client) { c.username, c.password = username, password }
}

// WithHTTPClient uses hc instead of a default http.Client.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(agent string) Option { return func(c *Client) { c.agent = agent } }

// New returns a Client of the API at baseURL (scheme, host and port, such
// as DefaultURL; a path is ignored). A malformed URL is reported by the
// first call.
func New(baseURL string, opts ...Option) *Client {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		u = nil
	}
	c := &Client{base: u, http: &http.Client{Timeout: 5 * time.Minute}, agent: "mooring-client"}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the server's URL the client was made with, or "" when
// it was malformed.
func (c *Client) BaseURL() string {
	if c.base == nil {
		return ""
	}
	return c.base.Scheme + "://" + c.base.Host
}

// Error is an error response of the API.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Detail is the API's message ({"detail": …}); empty for field errors.
	Detail string
	// Fields are per-field messages ({"name": ["…"]}) of a 400.
	Fields map[string][]string
}

// Error returns the detail, or the field messages as "field: message"
// lines.
func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	if len(e.Fields) == 0 {
		return fmt.Sprintf("the server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines []string
	for _, k := range keys {
		for _, m := range e.Fields[k] {
			if k == "non_field_errors" {
				lines = append(lines, m)
			} else {
				lines = append(lines, k+": "+m)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns errdef's sentinel for the status.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return errdef.ErrInvalid
	case http.StatusUnauthorized:
		return errdef.ErrUnauthenticated
	case http.StatusForbidden:
		return errdef.ErrDenied
	case http.StatusNotFound:
		return errdef.ErrNotFound
	case http.StatusConflict:
		return errdef.ErrConflict
	case http.StatusRequestEntityTooLarge:
		return errdef.ErrTooLarge
	case http.StatusMethodNotAllowed:
		return errdef.ErrUnsupported
	}
	return nil
}

// Do sends a request to path (an href, or a path with a query) with body
// encoded as JSON (nil: none) and decodes a 2xx answer into out (nil:
// discarded; *json.RawMessage: kept as is). Any other answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if c.base == nil {
		return errdef.New(errdef.ErrInvalid, "the server URL is not an http:// or https:// URL with a host")
	}
	u, err := c.base.Parse(path)
	if err != nil {
		return errdef.New(errdef.ErrInvalid, "path %q: %v", path, err)
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if c.username != "" || c.password != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(resp.StatusCode, raw)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || len(raw) == 0 {
		return nil
	}
	if rm, ok := out.(*json.RawMessage); ok {
		*rm = append((*rm)[:0], raw...)
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// apiError decodes an error answer: {"detail": …}, or field messages.
func apiError(status int, raw []byte) *Error {
	e := &Error{Status: status}
	var detail struct {
		Detail *string `json:"detail"`
	}
	if json.Unmarshal(raw, &detail) == nil && detail.Detail != nil {
		e.Detail = *detail.Detail
		return e
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) == nil && len(fields) > 0 {
		e.Fields = map[string][]string{}
		for k, v := range fields {
			var msgs []string
			var one string
			switch {
			case json.Unmarshal(v, &msgs) == nil:
			case json.Unmarshal(v, &one) == nil:
				msgs = []string{one}
			default:
				msgs = []string{string(v)}
			}
			e.Fields[k] = msgs
		}
		return e
	}
	if status >= 400 && len(bytes.TrimSpace(raw)) > 0 && len(raw) < 512 && !bytes.Contains(raw, []byte("<")) {
		e.Detail = strings.TrimSpace(string(raw))
	}
	return e
}

// Page is one page of a list.
type Page[T any] struct {
	Count    int     `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// ListOptions page and filter a list: Filters are query parameters such
// as name, state or repository_version.
type ListOptions struct {
	Limit, Offset int
	Filters       map[string]string
}

func (o ListOptions) query() string {
	q := url.Values{}
	for k, v := range o.Filters {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.Offset > 0 {
		q.Set("offset", fmt.Sprint(o.Offset))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// list GETs one page of a list.
func list[T any](ctx context.Context, c *Client, path string, o ListOptions) (*Page[T], error) {
	var p Page[T]
	if err := c.Do(ctx, http.MethodGet, path+o.query(), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// all GETs every page of a list.
func all[T any](ctx context.Context, c *Client, path string, o ListOptions) ([]T, error) {
	var out []T
	if o.Limit == 0 {
		o.Limit = 1000
	}
	for {
		p, err := list[T](ctx, c, path, o)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Results...)
		if p.Next == nil || len(p.Results) == 0 {
			return out, nil
		}
		o.Offset += len(p.Results)
	}
}

// byName returns the one object of a list named name, or an *Error
// wrapping errdef.ErrNotFound.
func byName[T any](ctx context.Context, c *Client, path, kind, name string) (*T, error) {
	p, err := list[T](ctx, c, path, ListOptions{Filters: map[string]string{"name": name}, Limit: 2})
	if err != nil {
		return nil, err
	}
	if len(p.Results) == 0 {
		return nil, &Error{Status: http.StatusNotFound, Detail: fmt.Sprintf("No %s named %q.", kind, name)}
	}
	return &p.Results[0], nil
}

// get GETs one object.
func get[T any](ctx context.Context, c *Client, href string) (*T, error) {
	var v T
	if err := c.Do(ctx, http.MethodGet, href, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// send sends body and decodes the answer as T.
func send[T any](ctx context.Context, c *Client, method, href string, body any) (*T, error) {
	var v T
	if err := c.Do(ctx, method, href, body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// TaskRef is the answer of an operation that runs as a task.
type TaskRef struct {
	Task string `json:"task"`
}

// deleteMaybeTask DELETEs href: nil when it was deleted at once (204), the
// task when the deletion runs as one (202).
func (c *Client) deleteMaybeTask(ctx context.Context, href string) (*TaskRef, error) {
	var ref TaskRef
	if err := c.Do(ctx, http.MethodDelete, href, nil, &ref); err != nil {
		return nil, err
	}
	if ref.Task == "" {
		return nil, nil
	}
	return &ref, nil
}

// IsNotFound reports whether err is the API's 404 (or a name not found).
func IsNotFound(err error) bool { return errors.Is(err, errdef.ErrNotFound) }
