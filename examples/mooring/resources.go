package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

// resource is a kind of object the API lists at path: what a generic
// list, show and delete need, and how a table shows it. A new endpoint's
// list/show/delete is one resource value and one line per subcommand.
type resource struct {
	kind string // "repository"
	path string // the list's path
	cols []column
}

// column is one column of a table: a header and what a cell shows.
type column struct {
	head string
	cell func(obj map[string]any) string
}

// field is a column showing one field of the JSON object.
func field(head, key string) column {
	return column{head, func(o map[string]any) string { return text(o[key]) }}
}

// text renders a JSON value for a table cell.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil && strings.Contains(x, "T") {
			return t.Local().Format("2006-01-02 15:04:05")
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = text(e)
		}
		return strings.Join(parts, ",")
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// href resolves a name (or an href, kept as it is) to the href of the
// resource's object of that name.
func (a *app) href(ctx context.Context, r resource, name string) (string, error) {
	if strings.HasPrefix(name, client.APIRoot) {
		return name, nil
	}
	var page struct {
		Results []map[string]any `json:"results"`
	}
	if err := a.c.Do(ctx, http.MethodGet, r.path+"?"+url.Values{"name": {name}}.Encode(), nil, &page); err != nil {
		return "", err
	}
	if len(page.Results) == 0 {
		return "", &client.Error{Status: http.StatusNotFound, Detail: fmt.Sprintf("There is no %s named %q.", r.kind, name)}
	}
	return text(page.Results[0]["_href"]), nil
}

// names returns the names of the resource's objects, for completion.
func (a *app) names(ctx context.Context, r resource, prefix string) []string {
	objs, err := a.listAll(ctx, r.path, url.Values{}, 1000)
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range objs {
		if n := text(o["name"]); strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// completeNames completes the first argument with object names.
func (a *app) completeNames(r resource) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 || a.connect() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.names(cmd.Context(), r, prefix), cobra.ShellCompDirectiveNoFileComp
	}
}

// listAll GETs up to limit objects of a list (0: all), following pages.
func (a *app) listAll(ctx context.Context, path string, q url.Values, limit int) ([]map[string]any, error) {
	return a.listFrom(ctx, path, q, 0, limit)
}

// listFrom is listAll skipping the first offset objects.
func (a *app) listFrom(ctx context.Context, path string, q url.Values, offset, limit int) ([]map[string]any, error) {
	var out []map[string]any
	for {
		page := 1000
		if limit > 0 {
			page = min(page, limit-len(out))
		}
		q.Set("limit", strconv.Itoa(page))
		q.Set("offset", strconv.Itoa(offset))
		var p struct {
			Next    *string          `json:"next"`
			Results []map[string]any `json:"results"`
		}
		if err := a.c.Do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Results...)
		offset += len(p.Results)
		if p.Next == nil || len(p.Results) == 0 || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
	}
}

// table prints objects as a table of cols, or as JSON.
func (a *app) table(objs []map[string]any, cols []column) error {
	if a.json {
		if objs == nil {
			objs = []map[string]any{}
		}
		return a.printJSON(objs)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, o := range objs {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = strings.ReplaceAll(c.cell(o), "\t", " ")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// details prints one object: every field, one per line, or JSON.
func (a *app) details(obj map[string]any) error {
	if a.json {
		return a.printJSON(obj)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, pj := strings.HasPrefix(keys[i], "_"), strings.HasPrefix(keys[j], "_")
		if pi != pj {
			return pj
		}
		return keys[i] < keys[j]
	})
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		v := obj[k]
		switch v.(type) {
		case map[string]any, []any:
			if _, isList := v.([]any); !isList || len(v.([]any)) > 0 && !isScalarList(v.([]any)) {
				raw, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintf(tw, "%s:\t%s\n", strings.TrimPrefix(k, "_"), strings.ReplaceAll(string(raw), "\n", "\n\t"))
				continue
			}
		}
		fmt.Fprintf(tw, "%s:\t%s\n", strings.TrimPrefix(k, "_"), text(v))
	}
	return tw.Flush()
}

func isScalarList(l []any) bool {
	for _, e := range l {
		switch e.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}

// getObject GETs one object as a map.
func (a *app) getObject(ctx context.Context, href string) (map[string]any, error) {
	var obj map[string]any
	err := a.c.Do(ctx, http.MethodGet, href, nil, &obj)
	return obj, err
}

// listCommand is "<kind> list": a page of objects as a table.
func (a *app) listCommand(r resource, filters ...string) *cobra.Command {
	var limit, offset int
	vals := make([]string, len(filters))
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List " + plural(r.kind),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for i, f := range filters {
				if vals[i] != "" {
					q.Set(strings.ReplaceAll(f, "-", "_"), vals[i])
				}
			}
			objs, err := a.listFrom(cmd.Context(), r.path, q, offset, limit)
			if err != nil {
				return err
			}
			return a.table(objs, r.cols)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many (0: all)")
	cmd.Flags().IntVar(&offset, "offset", 0, "skip this many")
	for i, f := range filters {
		cmd.Flags().StringVar(&vals[i], f, "", "only those whose "+strings.ReplaceAll(f, "-", " ")+" is this")
	}
	return cmd
}

// showCommand is "<kind> show NAME".
func (a *app) showCommand(r resource) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show a " + r.kind,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames(r),
		RunE: func(cmd *cobra.Command, args []string) error {
			href, err := a.href(cmd.Context(), r, args[0])
			if err != nil {
				return err
			}
			obj, err := a.getObject(cmd.Context(), href)
			if err != nil {
				return err
			}
			return a.details(obj)
		},
	}
}

// deleteCommand is "<kind> delete NAME"; a deletion that runs as a task
// is waited for with --wait.
func (a *app) deleteCommand(r resource) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete a " + r.kind,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames(r),
		RunE: func(cmd *cobra.Command, args []string) error {
			href, err := a.href(cmd.Context(), r, args[0])
			if err != nil {
				return err
			}
			var ref client.TaskRef
			if err := a.c.Do(cmd.Context(), http.MethodDelete, href, nil, &ref); err != nil {
				return err
			}
			if ref.Task != "" {
				return a.started(cmd.Context(), ref.Task, wait)
			}
			if !a.json {
				fmt.Fprintf(a.out, "Deleted %s %s.\n", r.kind, args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the deletion when it runs as a task")
	return cmd
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d argument(s)", names, len(args))
		}
		return nil
	}
}

func plural(kind string) string {
	if strings.HasSuffix(kind, "y") {
		return strings.TrimSuffix(kind, "y") + "ies"
	}
	return kind + "s"
}

// nameOfHref shows an href as the name of its object, looked up once per
// href in cache; anything else as it is.
func (a *app) nameOfHref(ctx context.Context, cache map[string]string, href string) string {
	if !strings.HasPrefix(href, client.APIRoot) {
		return href
	}
	if n, ok := cache[href]; ok {
		return n
	}
	n := href
	if obj, err := a.getObject(ctx, href); err == nil && text(obj["name"]) != "" {
		n = text(obj["name"])
	}
	cache[href] = n
	return n
}
