package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

var schedules = resource{
	kind: "schedule",
	path: client.APIRoot + "task-schedules/",
	cols: []column{field("NAME", "name"), field("REMOTE", "remote"), field("REPOSITORY", "repository"),
		field("EVERY", "dispatch_interval"), field("NEXT", "next_dispatch"), field("LAST", "last_dispatch"), field("SKIPPED", "skipped_dispatches")},
}

func (a *app) scheduleCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Aliases: []string{"schedules"}, Short: "Syncs that run on their own, every period"}
	list := a.listCommand(schedules, "name")
	inner := list.RunE
	list.RunE = func(cmd *cobra.Command, args []string) error {
		if !a.json {
			cache := map[string]string{}
			schedules.cols[1].cell = func(o map[string]any) string { return a.nameOfHref(cmd.Context(), cache, text(o["remote"])) }
			schedules.cols[2].cell = func(o map[string]any) string { return a.nameOfHref(cmd.Context(), cache, text(o["repository"])) }
		}
		return inner(cmd, args)
	}
	cmd.AddCommand(list, a.showCommand(schedules), a.deleteCommand(schedules), a.scheduleEdit(true), a.scheduleEdit(false))
	return cmd
}

// scheduleEdit is "schedule create NAME" and "schedule update NAME".
func (a *app) scheduleEdit(create bool) *cobra.Command {
	var remote, repo, every, start string
	var mirror bool
	cmd := &cobra.Command{Use: "update NAME", Short: "Change a schedule: the fields given", Args: exactArgs(1, "NAME")}
	if create {
		cmd.Use, cmd.Short = "create NAME --remote REMOTE --repository REPOSITORY --every PERIOD [--mirror] [--start TIME]", "Sync a remote into a repository every period"
	} else {
		cmd.ValidArgsFunction = a.completeNames(schedules)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		var req client.ScheduleRequest
		if remote != "" {
			h, err := a.href(ctx, remotes, remote)
			if err != nil {
				return err
			}
			req.Remote = h
		}
		if repo != "" {
			h, err := a.href(ctx, repositories, repo)
			if err != nil {
				return err
			}
			req.Repository = h
		}
		req.DispatchInterval = every
		if cmd.Flags().Changed("mirror") {
			req.Mirror = &mirror
		}
		if start != "" {
			t, err := time.Parse(time.RFC3339, start)
			if err != nil {
				return usagef("--start %q: want a time such as 2030-01-31T02:00:00Z", start)
			}
			req.NextDispatch = &t
		}
		if create {
			req.Name = args[0]
			s, err := a.c.CreateSchedule(ctx, req)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(s)
			}
			a.printf("Created schedule %s: every %s, next at %s\n", s.Name, s.DispatchInterval, s.NextDispatch.Local().Format(time.DateTime))
			return nil
		}
		href, err := a.href(ctx, schedules, args[0])
		if err != nil {
			return err
		}
		if n, _ := cmd.Flags().GetString("name"); n != "" {
			req.Name = n
		}
		s, err := a.c.UpdateSchedule(ctx, href, req)
		if err != nil {
			return err
		}
		return a.created(s, "", "")
	}
	f := cmd.Flags()
	f.StringVar(&remote, "remote", "", "the remote to sync from")
	f.StringVar(&repo, "repository", "", "the repository to sync into")
	f.StringVar(&every, "every", "", "the period, such as 24h or 1h30m")
	f.BoolVar(&mirror, "mirror", false, "sync in mirror mode")
	f.StringVar(&start, "start", "", "when the first sync is due (RFC 3339; default now)")
	if !create {
		f.String("name", "", "new name")
	}
	return cmd
}
