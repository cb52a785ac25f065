package main

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

func (a *app) contentCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "content", Short: "Manifests, manifest lists, blobs and tags"}
	var kind, repo, digest, name, mediaType string
	var version, added, removed, limit int
	list := &cobra.Command{
		Use:   "list [--type TYPE] [--repository NAME [--version N | --added-in N | --removed-in N]] [--digest D] [--name TAG] [--media-type T]",
		Short: "List content, with the API's filters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(client.ContentKinds, kind) {
				return usagef("--type %q: want one of %s", kind, strings.Join(client.ContentKinds, ", "))
			}
			q := url.Values{}
			for k, v := range map[string]string{"digest": digest, "name": name, "media_type": mediaType} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if repo != "" {
				href, err := a.href(cmd.Context(), repositories, repo)
				if err != nil {
					return err
				}
				switch {
				case added >= 0:
					q.Set("repository_version_added", href+"versions/"+strconv.Itoa(added)+"/")
				case removed >= 0:
					q.Set("repository_version_removed", href+"versions/"+strconv.Itoa(removed)+"/")
				default:
					v, err := a.versionHref(cmd.Context(), href, version)
					if err != nil {
						return err
					}
					q.Set("repository_version", v)
				}
			} else if version >= 0 || added >= 0 || removed >= 0 {
				return usagef("--version, --added-in and --removed-in need --repository")
			}
			objs, err := a.listAll(cmd.Context(), client.APIRoot+"content/docker/"+kind+"/", q, limit)
			if err != nil {
				return err
			}
			cols := []column{field("DIGEST", "digest"), field("MEDIA TYPE", "media_type"), field("SIZE", "size"), field("CREATED", "_created")}
			if strings.HasSuffix(kind, "-tags") {
				cols = []column{field("NAME", "name"), field("DIGEST", "digest"), field("MEDIA TYPE", "media_type"), field("CREATED", "_created")}
			}
			return a.table(objs, cols)
		},
	}
	f := list.Flags()
	f.StringVar(&kind, "type", "manifests", "one of "+strings.Join(client.ContentKinds, ", "))
	f.StringVar(&repo, "repository", "", "content of this repository's latest version (or --version)")
	f.IntVar(&version, "version", -1, "content of this version of --repository")
	f.IntVar(&added, "added-in", -1, "content this version of --repository added")
	f.IntVar(&removed, "removed-in", -1, "content this version of --repository removed")
	f.StringVar(&digest, "digest", "", "only this digest")
	f.StringVar(&name, "name", "", "only tags of this name")
	f.StringVar(&mediaType, "media-type", "", "only this media type")
	f.IntVar(&limit, "limit", 0, "show at most this many (0: all)")
	list.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(client.ContentKinds, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(list)
	return cmd
}
