package main

import (
	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

var pullThroughRemotes = resource{
	kind: "pull-through remote",
	path: client.APIRoot + "remotes/docker/pull-through/",
	cols: []column{field("NAME", "name"), field("URL", "url"), field("POLICY", "policy"), field("INCLUDES", "includes"), field("EXCLUDES", "excludes")},
}

var pullThroughDistributions = resource{
	kind: "pull-through distribution",
	path: client.APIRoot + "docker-pull-through-distributions/",
	cols: []column{field("NAME", "name"), field("BASE PATH", "base_path"), field("REGISTRY PATH", "registry_path"),
		field("REMOTE", "remote"), field("TAG TTL", "tag_ttl"), field("MAX SIZE", "max_size")},
}

// pullThroughCommand is "mooring pull-through remote|distribution …":
// registries served through Mooring on first pull.
func (a *app) pullThroughCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "pull-through", Short: "Upstream registries served on demand, cached on first pull"}
	rm := &cobra.Command{Use: "remote", Short: "Registries to pull through"}
	rm.AddCommand(a.crud(pullThroughRemotes, "--url URL [--includes PATTERN]...", []bodyFlag{
		{flag: "url", key: "url", usage: "the registry's URL"},
		{flag: "includes", key: "includes", kind: "list", usage: "upstream repositories that may be pulled (patterns)"},
		{flag: "excludes", key: "excludes", kind: "list", usage: "upstream repositories that may not be pulled"},
		{flag: "policy", key: "policy", usage: "on_demand or streamed"},
		{flag: "download-concurrency", key: "download_concurrency", kind: "int", usage: "parallel downloads"},
		{flag: "remote-username", key: "username", usage: "user name at the registry"},
		{flag: "remote-password", key: "password", usage: "password at the registry (never shown back)"},
		{flag: "proxy-url", key: "proxy_url", usage: "proxy for every request to the registry"},
		{flag: "tls-verify", key: "ssl_validation", kind: "bool", usage: "check the registry's TLS certificate"},
	}, "name")...)
	dist := &cobra.Command{Use: "distribution", Short: "Base paths that pull through a remote"}
	dist.AddCommand(a.crud(pullThroughDistributions, "--base-path PATH --remote REMOTE", []bodyFlag{
		{flag: "base-path", key: "base_path", usage: "the path clients pull under"},
		{flag: "remote", key: "remote", usage: "the pull-through remote", ref: &pullThroughRemotes},
		{flag: "tag-ttl", key: "tag_ttl", kind: "int", usage: "seconds a tag is trusted before it is asked again"},
		{flag: "max-size", key: "max_size", kind: "int", usage: "bytes the cache may hold"},
	}, "name", "base-path")...)
	cmd.AddCommand(rm, dist)
	return cmd
}

// reclaimCommand is "repository reclaim NAME…": drop the stored bytes of
// on-demand content, keeping what the versions kept need.
func (a *app) reclaimCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "reclaim NAME... [--wait]",
		Short: "Free the disk space of repositories' content that can be fetched again on demand",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var hrefs []string
			for _, name := range args {
				h, err := a.href(cmd.Context(), repositories, name)
				if err != nil {
					return err
				}
				hrefs = append(hrefs, h)
			}
			var ref client.TaskRef
			if err := a.c.Do(cmd.Context(), "POST", repositories.path+"reclaim_space/", map[string]any{"repo_hrefs": hrefs}, &ref); err != nil {
				return err
			}
			return a.started(cmd.Context(), ref.Task, wait)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the task, showing its progress")
	return cmd
}
