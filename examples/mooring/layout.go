package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

func (a *app) exportCommand() *cobra.Command {
	var output string
	var version int
	var tags []string
	var wait bool
	cmd := &cobra.Command{
		Use:   "export REPOSITORY --output DIR|FILE.tar [--version N] [--tag T]...",
		Short: "Export a repository version to an OCI image layout on the server's machine",
		Long: "Export writes a repository version (the latest unless --version says), or the tags given, to an\n" +
			"OCI image layout byte for byte: a directory, or a tar archive when --output ends in .tar. The\n" +
			"server writes it, so the path is on the server's machine, inside a directory it was started with\n" +
			"(-allowed-paths); a relative path is taken from this command's working directory.",
		Args:              exactArgs(1, "REPOSITORY"),
		ValidArgsFunction: a.completeNames(repositories),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return usagef("--output is required")
			}
			abs, err := filepath.Abs(output)
			if err != nil {
				return err
			}
			href, err := a.href(cmd.Context(), repositories, args[0])
			if err != nil {
				return err
			}
			req := client.ExportRequest{Path: abs, Tags: tags}
			if version >= 0 {
				req.RepositoryVersion = fmt.Sprintf("%sversions/%d/", href, version)
			}
			ref, err := a.c.Export(cmd.Context(), href, req)
			if err != nil {
				return err
			}
			return a.started(cmd.Context(), ref.Task, wait)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "the layout to write: a directory, or FILE.tar")
	cmd.Flags().IntVar(&version, "version", -1, "the version to export (default: the latest)")
	cmd.Flags().StringSliceVar(&tags, "tag", nil, "export only this tag (repeatable)")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the export, showing its progress")
	return cmd
}

func (a *app) importCommand() *cobra.Command {
	var input string
	var wait bool
	cmd := &cobra.Command{
		Use:   "import REPOSITORY --input DIR|FILE.tar [--wait]",
		Short: "Import an OCI image layout on the server's machine into a new repository version",
		Long: "Import reads an OCI image layout (a directory or a tar archive, as skopeo, oras and podman\n" +
			"write them) on the server's machine, inside a directory it was started with (-allowed-paths),\n" +
			"checks every digest, and makes a new version of the repository with its images and tags.",
		Args:              exactArgs(1, "REPOSITORY"),
		ValidArgsFunction: a.completeNames(repositories),
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" {
				return usagef("--input is required")
			}
			abs, err := filepath.Abs(input)
			if err != nil {
				return err
			}
			href, err := a.href(cmd.Context(), repositories, args[0])
			if err != nil {
				return err
			}
			ref, err := a.c.Import(cmd.Context(), href, client.ImportRequest{Path: abs})
			if err != nil {
				return err
			}
			return a.started(cmd.Context(), ref.Task, wait)
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "the layout to read: a directory, or FILE.tar")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the import, showing its progress")
	return cmd
}
