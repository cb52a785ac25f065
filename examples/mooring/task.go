package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

var taskStates = []string{client.TaskWaiting, client.TaskRunning, client.TaskCompleted, client.TaskFailed, client.TaskCanceled}

// taskID is the UUID of a task href.
func taskID(href string) string {
	return strings.TrimSuffix(strings.TrimPrefix(href, client.APIRoot+"tasks/"), "/")
}

// taskHref accepts a task's id or href.
func taskHref(arg string) string {
	if strings.HasPrefix(arg, client.APIRoot) {
		return arg
	}
	return client.APIRoot + "tasks/" + arg + "/"
}

func (a *app) taskCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "task", Aliases: []string{"tasks"}, Short: "Background tasks: syncs, exports, imports, actions"}
	var state, name string
	var limit int
	list := &cobra.Command{
		Use:   "list [--state STATE] [--name NAME]",
		Short: "List tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			if name != "" {
				q.Set("name", name)
			}
			objs, err := a.listAll(cmd.Context(), client.APIRoot+"tasks/", q, limit)
			if err != nil {
				return err
			}
			return a.table(objs, []column{
				{"ID", func(o map[string]any) string { return taskID(text(o["_href"])) }},
				field("NAME", "name"), field("STATE", "state"), field("CREATED", "_created"), field("FINISHED", "finished_at"),
				{"ERROR", func(o map[string]any) string {
					e, _ := o["error"].(map[string]any)
					return text(e["description"])
				}},
			})
		},
	}
	list.Flags().StringVar(&state, "state", "", "one of "+strings.Join(taskStates, ", "))
	list.Flags().StringVar(&name, "name", "", "only tasks of this name, such as sync")
	list.Flags().IntVar(&limit, "limit", 100, "show at most this many (0: all)")
	list.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(taskStates, cobra.ShellCompDirectiveNoFileComp))

	var wait bool
	show := &cobra.Command{
		Use:   "show ID [--wait]",
		Short: "Show a task; with --wait, follow it to its end",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait {
				return a.wait(cmd.Context(), taskHref(args[0]))
			}
			obj, err := a.getObject(cmd.Context(), taskHref(args[0]))
			if err != nil {
				return err
			}
			return a.details(obj)
		},
	}
	show.Flags().BoolVar(&wait, "wait", false, "wait for the task, showing its progress")
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.c.CancelTask(cmd.Context(), taskHref(args[0]))
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(t)
			}
			fmt.Fprintf(a.out, "Task %s is %s.\n", taskID(t.Href), describeState(t))
			return nil
		},
	}
	cmd.AddCommand(list, show, cancel)
	return cmd
}

// describeState says a task's state; a running one asked to cancel is
// "canceling".
func describeState(t *client.Task) string {
	if t.State == client.TaskRunning {
		return "running (cancel requested)"
	}
	return t.State
}
