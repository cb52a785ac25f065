// Command mooring is the command-line client of a Mooring server's REST
// API, as pulp-cli is Pulp's: repositories and their versions, remotes and
// syncs, distributions, content, tasks, sync schedules, OCI layout export
// and import, and the repository actions, by name rather than href.
//
//	go install github.com/mooring-dev/mooring/examples/mooring@latest
//	mooring repository create foo
//	mooring remote create library/busybox --url https://registry-1.docker.io --upstream-name busybox
//	mooring sync library/busybox --repository foo --wait
//
// The server is http://localhost:24817 unless --url or MOORING_URL says
// otherwise. Credentials come from --username and --password, else
// MOORING_USERNAME and MOORING_PASSWORD, else ~/.netrc (the entry of the
// server's host), as httpie reads them. Output is a table, or JSON with
// --json. --wait shows a task's progress until it ends, and exits non-zero
// when it fails; Ctrl-C then asks whether to cancel it. "mooring
// completion bash" prints shell completion.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mooring-dev/mooring/server/client"
)

// app is what every command shares: settings and the client.
type app struct {
	url, username, password, netrc string
	json                           bool
	out, errOut                    io.Writer
	in                             *os.File
	c                              *client.Client
}

func main() {
	a := &app{out: os.Stdout, errOut: os.Stderr, in: os.Stdin}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	root := a.rootCommand()
	err := root.ExecuteContext(ctx)
	os.Exit(a.exitCode(err))
}

// exitCode prints err, as the API's messages rather than raw JSON, and
// returns the exit status: 0, 1 for a failure, 2 for bad usage, 130 when
// interrupted.
func (a *app) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	var ie *interrupted
	switch {
	case errors.As(err, &ie):
		fmt.Fprintln(a.errOut, err)
		return 130
	case errors.As(err, &ue):
		fmt.Fprintln(a.errOut, "Error:", err)
		fmt.Fprintln(a.errOut, "Run with --help for usage.")
		return 2
	}
	var ae *client.Error
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.Error()
		if ae.Status == 401 {
			msg += "\nGive credentials with --username and --password, MOORING_USERNAME and MOORING_PASSWORD, or in ~/.netrc (machine " + a.host() + ")."
		}
	}
	for i, line := range strings.Split(msg, "\n") {
		if i == 0 {
			fmt.Fprintln(a.errOut, "Error:", line)
		} else {
			fmt.Fprintln(a.errOut, "      ", line)
		}
	}
	return 1
}

// usageError is a command used wrongly.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// interrupted is a wait left with Ctrl-C, the task going on.
type interrupted struct{ href string }

func (e *interrupted) Error() string {
	return "Interrupted; the task goes on: mooring task show " + taskID(e.href)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "mooring",
		Short: "Drive a Mooring server: repositories, remotes, syncs, distributions, tasks",
		Long: "mooring drives a Mooring server's REST API by name.\n\n" +
			"The server is --url, else MOORING_URL, else " + client.DefaultURL + ". Credentials are --username and\n" +
			"--password, else MOORING_USERNAME and MOORING_PASSWORD, else the ~/.netrc entry of the server's host.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.connect()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	f := root.PersistentFlags()
	f.StringVar(&a.url, "url", envOr("MOORING_URL", client.DefaultURL), "server URL (env MOORING_URL)")
	f.StringVarP(&a.username, "username", "u", os.Getenv("MOORING_USERNAME"), "user name (env MOORING_USERNAME; default from ~/.netrc)")
	f.StringVarP(&a.password, "password", "p", os.Getenv("MOORING_PASSWORD"), "password (env MOORING_PASSWORD; default from ~/.netrc)")
	f.StringVar(&a.netrc, "netrc", os.Getenv("NETRC"), "netrc file to read credentials from (default ~/.netrc)")
	f.BoolVar(&a.json, "json", false, "print JSON instead of a table")
	for _, c := range []*cobra.Command{
		a.repositoryCommand(), a.remoteCommand(), a.syncCommand(), a.distributionCommand(),
		a.contentCommand(), a.taskCommand(), a.scheduleCommand(), a.exportCommand(), a.importCommand(),
		a.orphansCommand(), a.statusCommand(), a.pullThroughCommand(),
	} {
		root.AddCommand(c)
	}
	return root
}

// host is the server's host name, as ~/.netrc names it.
func (a *app) host() string {
	u, err := url.Parse(a.url)
	if err != nil {
		return a.url
	}
	return u.Hostname()
}

// connect makes the client from the settings.
func (a *app) connect() error {
	u, err := url.Parse(a.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--url %q: want http://HOST[:PORT] or https://HOST[:PORT]", a.url)
	}
	user, pass := a.username, a.password
	if user == "" && pass == "" {
		user, pass, _ = client.NetrcCredentials(a.netrc, u.Hostname())
	}
	var opts []client.Option
	if user != "" || pass != "" {
		opts = append(opts, client.WithBasicAuth(user, pass))
	}
	a.c = client.New(a.url, append(opts, client.WithUserAgent("mooring-cli"))...)
	return nil
}

// printJSON prints v, indented.
func (a *app) printJSON(v any) error {
	var raw []byte
	var err error
	if rm, ok := v.(json.RawMessage); ok {
		var buf any
		if err := json.Unmarshal(rm, &buf); err != nil {
			return err
		}
		v = buf
	}
	raw, err = json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.out, "%s\n", raw)
	return err
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	return termIsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}
