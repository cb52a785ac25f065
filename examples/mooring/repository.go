package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

var repositories = resource{
	kind: "repository",
	path: client.APIRoot + "repositories/",
	cols: []column{
		field("NAME", "name"),
		{"LATEST VERSION", func(o map[string]any) string {
			h := text(o["_latest_version_href"])
			return h[strings.LastIndex(strings.TrimSuffix(h, "/"), "/")+1 : max(len(h)-1, 0)]
		}},
		field("DESCRIPTION", "description"),
		field("CREATED", "_created"),
	},
}

func (a *app) repositoryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "repository", Aliases: []string{"repositories", "repo"}, Short: "Repositories and their versions"}
	cmd.AddCommand(a.listCommand(repositories, "name"), a.showCommand(repositories), a.deleteCommand(repositories),
		a.repositoryCreate(), a.repositoryVersions(), a.repositoryUpdate(), a.reclaimCommand())
	a.addRepositoryActions(cmd)
	return cmd
}

func (a *app) repositoryCreate() *cobra.Command {
	var desc string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a repository",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.RepositoryRequest{Name: args[0]}
			if cmd.Flags().Changed("description") {
				req.Description = &desc
			}
			r, err := a.c.CreateRepository(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.created(r, "repository", r.Name)
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "what the repository holds")
	return cmd
}

func (a *app) repositoryUpdate() *cobra.Command {
	var name, desc string
	cmd := &cobra.Command{
		Use:               "update NAME",
		Short:             "Rename a repository or change its description",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames(repositories),
		RunE: func(cmd *cobra.Command, args []string) error {
			href, err := a.href(cmd.Context(), repositories, args[0])
			if err != nil {
				return err
			}
			var req client.RepositoryRequest
			if cmd.Flags().Changed("name") {
				req.Name = name
			}
			if cmd.Flags().Changed("description") {
				req.Description = &desc
			}
			r, err := a.c.UpdateRepository(cmd.Context(), href, req)
			if err != nil {
				return err
			}
			return a.created(r, "", "")
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&desc, "description", "", "new description")
	return cmd
}

// created prints an object just made or changed: JSON, or a line.
func (a *app) created(obj any, kind, name string) error {
	if a.json {
		return a.printJSON(obj)
	}
	if kind != "" {
		fmt.Fprintf(a.out, "Created %s %s.\n", kind, name)
		return nil
	}
	fmt.Fprintln(a.out, "Updated.")
	return nil
}

// summary renders a content summary part as "type count, …".
func summary(v any) string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		e, _ := m[k].(map[string]any)
		parts = append(parts, strings.TrimPrefix(k, "docker.")+" "+text(e["count"]))
	}
	return strings.Join(parts, ", ")
}

func (a *app) repositoryVersions() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:               "versions NAME",
		Short:             "List a repository's versions, newest first",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames(repositories),
		RunE: func(cmd *cobra.Command, args []string) error {
			href, err := a.href(cmd.Context(), repositories, args[0])
			if err != nil {
				return err
			}
			objs, err := a.listAll(cmd.Context(), href+"versions/", url.Values{}, limit)
			if err != nil {
				return err
			}
			part := func(name string) func(map[string]any) string {
				return func(o map[string]any) string {
					cs, _ := o["content_summary"].(map[string]any)
					return summary(cs[name])
				}
			}
			return a.table(objs, []column{field("NUMBER", "number"), field("CREATED", "_created"),
				{"ADDED", part("added")}, {"REMOVED", part("removed")}, {"PRESENT", part("present")}})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many (0: all)")
	return cmd
}

// versionHref returns the href of version n of the repository at
// repoHref; n < 0 is the latest.
func (a *app) versionHref(ctx context.Context, repoHref string, n int) (string, error) {
	if n >= 0 {
		return repoHref + "versions/" + strconv.Itoa(n) + "/", nil
	}
	r, err := a.c.Repository(ctx, repoHref)
	if err != nil {
		return "", err
	}
	return r.LatestVersionHref, nil
}

// action is a repository action of the API: POST repositories/<id>/<path>/
// with a body built from the arguments and flags, run as a task.
type action struct {
	use, short, path string
	args             int
	flags            func(cmd *cobra.Command)
	body             func(ctx context.Context, cmd *cobra.Command, args []string) (map[string]any, error)
}

// addRepositoryActions adds "repository tag|untag|copy-tags|…": each is a
// few lines here.
func (a *app) addRepositoryActions(parent *cobra.Command) {
	var from string
	var fromVersion int
	var names, digests, mediaTypes, units, adds, removes []string
	var baseVersion int
	source := func(ctx context.Context, body map[string]any) error {
		if from == "" {
			return usagef("--from is required")
		}
		src, err := a.href(ctx, repositories, from)
		if err != nil {
			return err
		}
		if fromVersion >= 0 {
			body["source_repository_version"] = src + "versions/" + strconv.Itoa(fromVersion) + "/"
		} else {
			body["source_repository"] = src
		}
		return nil
	}
	sourceFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&from, "from", "", "source repository")
		cmd.Flags().IntVar(&fromVersion, "from-version", -1, "source version number (default: the latest)")
	}
	for _, ac := range []action{
		{use: "tag NAME TAG DIGEST", short: "Tag a manifest or list of the latest version", path: "tag", args: 3,
			body: func(_ context.Context, _ *cobra.Command, args []string) (map[string]any, error) {
				return map[string]any{"tag": args[1], "digest": args[2]}, nil
			}},
		{use: "untag NAME TAG", short: "Remove a tag", path: "untag", args: 2,
			body: func(_ context.Context, _ *cobra.Command, args []string) (map[string]any, error) {
				return map[string]any{"tag": args[1]}, nil
			}},
		{use: "copy-tags NAME --from SOURCE [--tag T]...", short: "Copy tags (all by default) and what they name from another repository", path: "copy_tags", args: 1,
			flags: func(cmd *cobra.Command) {
				sourceFlags(cmd)
				cmd.Flags().StringSliceVar(&names, "tag", nil, "a tag to copy (repeatable)")
			},
			body: func(ctx context.Context, _ *cobra.Command, _ []string) (map[string]any, error) {
				body := map[string]any{}
				if len(names) > 0 {
					body["names"] = names
				}
				return body, source(ctx, body)
			}},
		{use: "copy-manifests NAME --from SOURCE [--digest D]... [--media-type T]...", short: "Copy manifests and lists (all by default) from another repository", path: "copy_manifests", args: 1,
			flags: func(cmd *cobra.Command) {
				sourceFlags(cmd)
				cmd.Flags().StringSliceVar(&digests, "digest", nil, "a digest to copy (repeatable)")
				cmd.Flags().StringSliceVar(&mediaTypes, "media-type", nil, "copy only this media type (repeatable)")
			},
			body: func(ctx context.Context, _ *cobra.Command, _ []string) (map[string]any, error) {
				body := map[string]any{}
				if len(digests) > 0 {
					body["digests"] = digests
				}
				if len(mediaTypes) > 0 {
					body["media_types"] = mediaTypes
				}
				return body, source(ctx, body)
			}},
		{use: "add NAME --content HREF...", short: "Add content units (with what they need) to a repository", path: "add", args: 1,
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringSliceVar(&units, "content", nil, "a content unit's href (repeatable)")
			},
			body: func(context.Context, *cobra.Command, []string) (map[string]any, error) {
				return map[string]any{"content_units": units}, nil
			}},
		{use: "modify NAME [--add HREF]... [--remove HREF]... [--base-version N]", short: "Make a version from another (the latest by default) with units added and removed", path: "modify", args: 1,
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringSliceVar(&adds, "add", nil, "a content unit's href to add (repeatable)")
				cmd.Flags().StringSliceVar(&removes, "remove", nil, "a content unit's href to remove, or * (repeatable)")
				cmd.Flags().IntVar(&baseVersion, "base-version", -1, "the version to start from (default: the latest)")
			},
			body: func(ctx context.Context, _ *cobra.Command, args []string) (map[string]any, error) {
				body := map[string]any{}
				if len(adds) > 0 {
					body["add_content_units"] = adds
				}
				if len(removes) > 0 {
					body["remove_content_units"] = removes
				}
				if baseVersion >= 0 {
					href, err := a.href(ctx, repositories, args[0])
					if err != nil {
						return nil, err
					}
					body["base_version"] = href + "versions/" + strconv.Itoa(baseVersion) + "/"
				}
				return body, nil
			}},
		{use: "remove NAME --content HREF... | --content '*'", short: "Remove content units (and what only they need)", path: "remove", args: 1,
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringSliceVar(&units, "content", nil, "a content unit's href, or * for all (repeatable)")
			},
			body: func(context.Context, *cobra.Command, []string) (map[string]any, error) {
				return map[string]any{"content_units": units}, nil
			}},
	} {
		parent.AddCommand(a.actionCommand(ac))
	}
}

// actionCommand makes the command of one repository action.
func (a *app) actionCommand(ac action) *cobra.Command {
	var wait bool
	name, _, _ := strings.Cut(ac.use, " ")
	cmd := &cobra.Command{
		Use:               ac.use,
		Short:             ac.short,
		Args:              exactArgs(ac.args, strings.TrimPrefix(ac.use, name+" ")),
		ValidArgsFunction: a.completeNames(repositories),
		RunE: func(cmd *cobra.Command, args []string) error {
			href, err := a.href(cmd.Context(), repositories, args[0])
			if err != nil {
				return err
			}
			body, err := ac.body(cmd.Context(), cmd, args)
			if err != nil {
				return err
			}
			ref, err := a.c.Action(cmd.Context(), href, ac.path, body)
			if err != nil {
				return err
			}
			return a.started(cmd.Context(), ref.Task, wait)
		},
	}
	if ac.flags != nil {
		ac.flags(cmd)
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the task, showing its progress")
	return cmd
}
