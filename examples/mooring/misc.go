package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.out, format, args...) }

func readFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("%v", err)
	}
	return string(raw), nil
}

func (a *app) orphansCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "orphans", Short: "Content no repository version holds"}
	var minutes int
	var wait bool
	cleanup := &cobra.Command{
		Use:   "cleanup [--protection-time MINUTES] [--wait]",
		Short: "Delete content no version holds (older than the protection time)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var protect *int
			if cmd.Flags().Changed("protection-time") {
				protect = &minutes
			}
			ref, err := a.c.CleanupOrphans(cmd.Context(), protect)
			if err != nil {
				return err
			}
			return a.started(cmd.Context(), ref.Task, wait)
		},
	}
	cleanup.Flags().IntVar(&minutes, "protection-time", 0, "keep orphans younger than this many minutes (default: the server's)")
	cleanup.Flags().BoolVar(&wait, "wait", false, "wait for the cleanup, showing its progress")
	cmd.AddCommand(cleanup)
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "The server's versions, database and storage health, and task workers online",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(st)
			}
			var versions []string
			for _, v := range st.Versions {
				versions = append(versions, v.Component+" "+v.Version)
			}
			up := map[bool]string{true: "connected", false: "NOT CONNECTED"}
			a.printf("Server:    %s\nVersions:  %s\nDatabase:  %s\nStorage:   %s\nWorkers:   %d online\n",
				a.c.BaseURL(), strings.Join(versions, ", "), up[st.DatabaseConnection.Connected], up[st.Storage.Connected], len(st.OnlineWorkers))
			for _, w := range st.OnlineWorkers {
				a.printf("           %s pid %d (last heartbeat %s)\n", w.Hostname, w.PID, w.LastHeartbeat.Local().Format("15:04:05"))
			}
			if !st.DatabaseConnection.Connected || !st.Storage.Connected {
				return fmt.Errorf("the server's database or storage does not answer")
			}
			return nil
		},
	}
}
