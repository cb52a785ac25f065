package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

var remotes = resource{
	kind: "remote",
	path: client.APIRoot + "remotes/docker/docker/",
	cols: []column{field("NAME", "name"), field("URL", "url"), field("UPSTREAM NAME", "upstream_name"),
		field("INCLUDE TAGS", "include_tags"), field("POLICY", "policy"), field("CREATED", "_created")},
}

func (a *app) remoteCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "remote", Aliases: []string{"remotes"}, Short: "Upstream registries to sync from"}
	cmd.AddCommand(a.listCommand(remotes, "name"), a.showCommand(remotes), a.deleteCommand(remotes),
		a.remoteEdit(true), a.remoteEdit(false))
	return cmd
}

// remoteEdit is "remote create NAME" and "remote update NAME": the flags
// given are the fields sent.
func (a *app) remoteEdit(create bool) *cobra.Command {
	var url, upstream, username, password, proxy, policy, caFile string
	var include, exclude, platforms []string
	var concurrency int
	var tlsVerify, syncReferrers bool
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a remote: the fields given",
		Args:  exactArgs(1, "NAME"),
	}
	if create {
		cmd.Use, cmd.Short = "create NAME --url URL --upstream-name NAME", "Create a remote"
	} else {
		cmd.ValidArgsFunction = a.completeNames(remotes)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body := map[string]any{}
		set := func(flag, key string, v any) {
			if cmd.Flags().Changed(flag) {
				body[key] = v
			}
		}
		set("url", "url", url)
		set("upstream-name", "upstream_name", upstream)
		set("include-tags", "include_tags", include)
		set("exclude-tags", "exclude_tags", exclude)
		set("include-platforms", "include_platforms", platforms)
		set("download-concurrency", "download_concurrency", concurrency)
		set("remote-username", "username", username)
		set("remote-password", "password", password)
		set("proxy-url", "proxy_url", proxy)
		set("policy", "policy", policy)
		set("tls-verify", "ssl_validation", tlsVerify)
		set("sync-referrers", "sync_referrers", syncReferrers)
		if caFile != "" {
			pem, err := readFile(caFile)
			if err != nil {
				return err
			}
			body["ssl_ca_certificate"] = pem
		}
		if create {
			body["name"] = args[0]
			var r client.Remote
			if err := a.c.Do(cmd.Context(), "POST", remotes.path, body, &r); err != nil {
				return err
			}
			return a.created(r, "remote", r.Name)
		}
		href, err := a.href(cmd.Context(), remotes, args[0])
		if err != nil {
			return err
		}
		if n, _ := cmd.Flags().GetString("name"); n != "" {
			body["name"] = n
		}
		r, err := a.c.UpdateRemote(cmd.Context(), href, body)
		if err != nil {
			return err
		}
		return a.created(r, "", "")
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "the registry's URL, such as https://registry-1.docker.io")
	f.StringVar(&upstream, "upstream-name", "", "the repository on the registry, such as busybox")
	f.StringSliceVar(&include, "include-tags", nil, "sync only tags matching these patterns (* and ?)")
	f.StringSliceVar(&exclude, "exclude-tags", nil, "skip tags matching these patterns")
	f.StringSliceVar(&platforms, "include-platforms", nil, "sync only these platforms of manifest lists (os/arch[/variant]); lists keep their digests")
	f.IntVar(&concurrency, "download-concurrency", 10, "parallel downloads")
	// Not --username: that is the Mooring user's, on every command.
	f.StringVar(&username, "remote-username", "", "user name at the registry")
	f.StringVar(&password, "remote-password", "", "password at the registry (never shown back)")
	f.StringVar(&proxy, "proxy-url", "", "proxy for every request to the registry")
	f.StringVar(&policy, "policy", "", "immediate, on_demand or streamed")
	f.StringVar(&caFile, "ca-cert", "", "PEM file of CA certificates to trust")
	f.BoolVar(&tlsVerify, "tls-verify", true, "check the registry's TLS certificate")
	f.BoolVar(&syncReferrers, "sync-referrers", true, "sync the cosign signature, attestation and SBOM tags and the OCI referrers of what is synced")
	if !create {
		f.String("name", "", "new name")
	}
	return cmd
}

func (a *app) syncCommand() *cobra.Command {
	var repo string
	var mirror, signedOnly, wait bool
	var patience time.Duration
	cmd := &cobra.Command{
		Use:               "sync REMOTE --repository REPOSITORY [--mirror] [--signed-only] [--retry-patience DURATION] [--wait]",
		Short:             "Sync a remote into a repository (a new version)",
		Args:              exactArgs(1, "REMOTE"),
		ValidArgsFunction: a.completeNames(remotes),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repo == "" {
				return usagef("--repository is required")
			}
			rh, err := a.href(cmd.Context(), remotes, args[0])
			if err != nil {
				return err
			}
			repoHref, err := a.href(cmd.Context(), repositories, repo)
			if err != nil {
				return err
			}
			if patience < 0 || patience > 24*time.Hour {
				return usagef("--retry-patience must be between 0 and 24h")
			}
			ref, err := a.c.Sync(cmd.Context(), rh, client.SyncRequest{Repository: repoHref, Mirror: mirror, SignedOnly: signedOnly,
				RetryPatience: int((patience + time.Second - 1) / time.Second)})
			if err != nil {
				return err
			}
			return a.started(cmd.Context(), ref.Task, wait)
		},
	}
	cmd.Flags().StringVar(&repo, "repository", "", "the repository to sync into")
	cmd.Flags().BoolVar(&mirror, "mirror", false, "make the new version hold exactly what the upstream has (default: only add)")
	cmd.Flags().BoolVar(&signedOnly, "signed-only", false, "skip images without a cosign or referrer signature")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the sync, showing its progress")
	cmd.Flags().DurationVar(&patience, "retry-patience", 0, "the longest the sync waits, at a time, for the upstream's rate limit (default: the server's, 2m)")
	cmd.RegisterFlagCompletionFunc("repository", func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if a.connect() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.names(cmd.Context(), repositories, prefix), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}
