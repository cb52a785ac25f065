package main

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

var distributions = resource{
	kind: "distribution",
	path: client.APIRoot + "docker-distributions/",
	cols: []column{field("NAME", "name"), field("BASE PATH", "base_path"), field("REGISTRY PATH", "registry_path"),
		field("REPOSITORY", "repository"), field("VERSION", "repository_version")},
}

func (a *app) distributionCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "distribution", Aliases: []string{"distributions", "dist"}, Short: "Base paths the registry serves"}
	list := a.listCommand(distributions, "name", "base-path")
	// Names, not hrefs, in the table.
	inner := list.RunE
	list.RunE = func(cmd *cobra.Command, args []string) error {
		if a.json {
			return inner(cmd, args)
		}
		cache := map[string]string{}
		distributions.cols[3].cell = func(o map[string]any) string { return a.nameOfHref(cmd.Context(), cache, text(o["repository"])) }
		distributions.cols[4].cell = func(o map[string]any) string {
			return versionLabel(a, cmd.Context(), cache, text(o["repository_version"]))
		}
		return inner(cmd, args)
	}
	cmd.AddCommand(list, a.showCommand(distributions), a.deleteCommand(distributions), a.distributionEdit(true), a.distributionEdit(false))
	return cmd
}

// versionLabel shows a version href as "REPOSITORY version N".
func versionLabel(a *app, ctx context.Context, cache map[string]string, href string) string {
	if href == "" {
		return ""
	}
	repo, n := splitVersion(href)
	return a.nameOfHref(ctx, cache, repo) + " version " + n
}

// splitVersion splits a version href into its repository's href and its
// number.
func splitVersion(href string) (string, string) {
	trimmed := href[:len(href)-1]
	i := len(trimmed) - 1
	for i >= 0 && trimmed[i] != '/' {
		i--
	}
	return trimmed[:i-len("versions")], trimmed[i+1:]
}

// distributionEdit is "distribution create NAME" and "update NAME".
func (a *app) distributionEdit(create bool) *cobra.Command {
	var basePath, repo string
	var version int
	cmd := &cobra.Command{Use: "update NAME", Short: "Change a distribution: the fields given", Args: exactArgs(1, "NAME")}
	if create {
		cmd.Use, cmd.Short = "create NAME --base-path PATH (--repository REPOSITORY [--version N])", "Serve a repository's latest version, or one version, at a base path"
	} else {
		cmd.ValidArgsFunction = a.completeNames(distributions)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		body := map[string]any{}
		if cmd.Flags().Changed("base-path") || create {
			body["base_path"] = basePath
		}
		if repo != "" {
			href, err := a.href(ctx, repositories, repo)
			if err != nil {
				return err
			}
			if version >= 0 {
				body["repository_version"] = href + "versions/" + strconv.Itoa(version) + "/"
				body["repository"] = nil
			} else {
				body["repository"] = href
				body["repository_version"] = nil
			}
		}
		if create {
			body["name"] = args[0]
			var d client.Distribution
			if err := a.c.Do(ctx, "POST", distributions.path, body, &d); err != nil {
				return err
			}
			if !a.json {
				a.printf("Created distribution %s: pull from %s\n", d.Name, d.RegistryPath)
				return nil
			}
			return a.printJSON(d)
		}
		href, err := a.href(ctx, distributions, args[0])
		if err != nil {
			return err
		}
		if n, _ := cmd.Flags().GetString("name"); n != "" {
			body["name"] = n
		}
		d, err := a.c.UpdateDistribution(ctx, href, body)
		if err != nil {
			return err
		}
		return a.created(d, "", "")
	}
	cmd.Flags().StringVar(&basePath, "base-path", "", "the path clients pull, as HOST/BASE-PATH:TAG")
	cmd.Flags().StringVar(&repo, "repository", "", "the repository served")
	cmd.Flags().IntVar(&version, "version", -1, "serve this version rather than following the latest")
	if !create {
		cmd.Flags().String("name", "", "new name")
	}
	return cmd
}
