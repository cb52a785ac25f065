package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// buildCLI builds the mooring command as a user would.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mooring")
	if out, err := exec.Command("go", "build", "-o", bin, "../mooring").CombinedOutput(); err != nil {
		t.Fatalf("go build ../mooring: %v\n%s", err, out)
	}
	return bin
}

// cli runs the mooring command with HOME (and so ~/.netrc) and MOORING_URL
// set, as a person at a shell would.
type cli struct {
	t        *testing.T
	bin, url string
	home     string
	dir      string
}

// run runs the command and returns its stdout, stderr and exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(withoutVar(withoutVar(withoutVar(os.Environ(), "MOORING_USERNAME"), "MOORING_PASSWORD"), "NETRC"), "HOME="+c.home, "MOORING_URL="+c.url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("mooring %s: %v", strings.Join(args, " "), err)
	}
	if len(stdout.String()) < 4096 {
		c.t.Logf("$ mooring %s\n%s%s(exit %d)", strings.Join(args, " "), stdout.String(), stderr.String(), code)
	}
	return stdout.String(), stderr.String(), code
}

// ok runs the command, fails the test unless it exits 0, and returns its
// stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("mooring %s exited %d:\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestCommandLine runs the mooring commands, as written, against
// the built server, with a Debian docker-registry upstream: credentials
// from ~/.netrc, names not hrefs, tables and --json, --wait, errors as the
// API's messages, export and import of an OCI layout, schedules, and the
// progress bar of --wait in a real terminal (tmux), Ctrl-C included.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server and the mooring command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	upstream := regtest.StartDistribution(t)
	pushed := pushWalkthroughImages(ctx, t, upstream)

	layouts := t.TempDir()
	p, password := startServerWith(t, buildServer(t), "-allowed-paths", layouts)
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine 127.0.0.1\nlogin admin\npassword "+password+"\n"), 0o600)
	c := &cli{t: t, bin: buildCLI(t), url: "http://" + p.api, home: home, dir: layouts}

	// The commands, exactly.
	c.ok("repository", "create", "foo")
	c.ok("remote", "create", "library/busybox", "--url", "http://"+upstream, "--upstream-name", "busybox")
	out := c.ok("sync", "library/busybox", "--repository", "foo", "--wait")
	if !strings.Contains(out, "Task sync completed") || !strings.Contains(out, "Created foo version 1") {
		t.Errorf("sync --wait printed %q", out)
	}
	out = c.ok("distribution", "create", "baz", "--base-path", "foo", "--repository", "foo")
	if !strings.Contains(out, p.content+"/foo") && !strings.Contains(out, "/foo") {
		t.Errorf("distribution create printed %q", out)
	}
	var repos []map[string]any
	if err := json.Unmarshal([]byte(c.ok("repository", "list", "--json")), &repos); err != nil || len(repos) != 1 || repos[0]["name"] != "foo" ||
		!strings.HasSuffix(repos[0]["_latest_version_href"].(string), "/versions/1/") {
		t.Errorf("repository list --json: %v %v", repos, err)
	}
	if out := c.ok("task", "list"); !strings.Contains(out, "sync") || !strings.Contains(out, "completed") || !strings.HasPrefix(out, "ID") {
		t.Errorf("task list printed %q", out)
	}
	c.ok("export", "foo", "--output", "foo-layout")
	if _, err := os.Stat(filepath.Join(layouts, "foo-layout", "index.json")); err != nil {
		t.Fatalf("export wrote no layout: %v", err)
	}
	c.ok("repository", "create", "bar")
	c.ok("import", "bar", "--input", "foo-layout", "--wait")

	// The import holds what the sync brought, tag for tag.
	tags := func(repo string) map[string]string {
		var units []map[string]any
		out := map[string]string{}
		for _, kind := range []string{"manifest-tags", "manifest-list-tags"} {
			if err := json.Unmarshal([]byte(c.ok("content", "list", "--type", kind, "--repository", repo, "--json")), &units); err != nil {
				t.Fatal(err)
			}
			for _, u := range units {
				out[u["name"].(string)] = u["digest"].(string)
			}
		}
		return out
	}
	fooTags, barTags := tags("foo"), tags("bar")
	if len(fooTags) != pushed.manifestTags+pushed.listTags || len(fooTags) != len(barTags) {
		t.Errorf("foo has tags %v, bar %v", fooTags, barTags)
	}
	for name, d := range fooTags {
		if barTags[name] != d || pushed.refs[name].String() != d {
			t.Errorf("tag %s: upstream %s, foo %s, bar %s", name, pushed.refs[name], d, barTags[name])
		}
	}
	if out := c.ok("repository", "versions", "foo"); !strings.Contains(out, "manifest-tag "+itoa(pushed.manifestTags)) {
		t.Errorf("repository versions printed %q", out)
	}
	if out := c.ok("distribution", "list"); !strings.Contains(out, "baz") || !strings.Contains(out, "foo") || strings.Contains(out, "/pulp/api/") {
		t.Errorf("distribution list shows hrefs rather than names: %q", out)
	}

	// Errors are the API's messages, not JSON, and the exit status says so.
	if _, errOut, code := c.run("repository", "create", "foo"); code != 1 || !strings.Contains(errOut, `Error: name: A repository named "foo" already exists`) || strings.Contains(errOut, "{") {
		t.Errorf("creating foo twice: exit %d, %q", code, errOut)
	}
	if _, errOut, code := c.run("repository", "show", "nope"); code != 1 || !strings.Contains(errOut, `no repository named "nope"`) {
		t.Errorf("show of a missing repository: exit %d, %q", code, errOut)
	}
	if _, errOut, code := c.run("export", "foo", "--output", "/etc/mooring-export"); code != 1 || !strings.Contains(errOut, "path:") {
		t.Errorf("export outside the allowed paths: exit %d, %q", code, errOut)
	}
	if _, errOut, code := c.run("--password", "wrong", "--username", "admin", "repository", "list"); code != 1 || !strings.Contains(errOut, "Invalid username/password.") {
		t.Errorf("wrong password: exit %d, %q", code, errOut)
	}
	if _, errOut, code := c.run("sync", "library/busybox"); code != 2 || !strings.Contains(errOut, "--repository is required") {
		t.Errorf("sync without --repository: exit %d, %q", code, errOut)
	}

	// Repository actions, as tasks.
	c.ok("repository", "tag", "foo", "mine", pushed.refs["v1"].String(), "--wait")
	if out := c.ok("content", "list", "--type", "manifest-tags", "--repository", "foo", "--name", "mine"); !strings.Contains(out, pushed.refs["v1"].String()) {
		t.Errorf("the new tag is not listed: %q", out)
	}
	c.ok("repository", "untag", "foo", "mine", "--wait")
	if out := c.ok("repository", "versions", "foo", "--limit", "1"); !strings.HasPrefix(strings.SplitN(out, "\n", 3)[1], "3 ") {
		t.Errorf("tag and untag did not make versions 2 and 3: %q", out)
	}
	c.ok("pull-through", "remote", "create", "hub", "--url", "http://"+upstream, "--includes", "library/*")
	if out := c.ok("pull-through", "remote", "list"); !strings.Contains(out, "hub") {
		t.Errorf("pull-through remote list: %q", out)
	}
	c.ok("pull-through", "remote", "delete", "hub")

	// Schedules, by name.
	c.ok("schedule", "create", "nightly", "--remote", "library/busybox", "--repository", "foo", "--every", "24h", "--start", "2099-01-01T00:00:00Z")
	if out := c.ok("schedule", "list"); !strings.Contains(out, "nightly") || !strings.Contains(out, "library/busybox") || !strings.Contains(out, "24h0m0s") {
		t.Errorf("schedule list printed %q", out)
	}
	c.ok("schedule", "delete", "nightly")
	if out := c.ok("status"); !strings.Contains(out, "Database:  connected") || !strings.Contains(out, "1 online") {
		t.Errorf("status printed %q", out)
	}
	if out, _, code := c.run("completion", "bash"); code != 0 || !strings.Contains(out, "__start_mooring") {
		t.Errorf("no bash completion: %.200q", out)
	}

	t.Run("terminal", func(t *testing.T) {
		tm := startTmux(t)
		c.t = t
		c.ok("repository", "create", "tty")
		pane := tm.run(t, c, "sync library/busybox --repository tty --wait")
		t.Logf("the terminal showed:\n%s", pane)
		if !strings.Contains(pane, "EXIT:0") || !strings.Contains(pane, "[") || !strings.Contains(pane, "done") || !strings.Contains(pane, "Task sync completed") {
			t.Errorf("sync --wait in a terminal:\n%s", pane)
		}
	})

	t.Run("ctrl-c", func(t *testing.T) {
		// A server without workers: the sync waits until it is canceled.
		idle, idlePassword := startServerWith(t, buildServer(t), "-workers", "0")
		idleHome := t.TempDir()
		os.WriteFile(filepath.Join(idleHome, ".netrc"), []byte("machine 127.0.0.1\nlogin admin\npassword "+idlePassword+"\n"), 0o600)
		ic := &cli{t: t, bin: c.bin, url: "http://" + idle.api, home: idleHome, dir: layouts}
		ic.ok("repository", "create", "slow")
		ic.ok("remote", "create", "up", "--url", "http://"+upstream, "--upstream-name", "busybox")
		tm := startTmux(t)
		tm.start(t, ic, "sync up --repository slow --wait")
		tm.waitFor(t, "waiting")
		tm.keys(t, "C-c")
		tm.waitFor(t, "Cancel task sync")
		tm.keys(t, "y", "Enter")
		pane := tm.waitFor(t, "EXIT:")
		t.Logf("the terminal showed:\n%s", pane)
		if !strings.Contains(pane, "EXIT:1") || !strings.Contains(pane, "was canceled") {
			t.Errorf("Ctrl-C, then yes:\n%s", pane)
		}
		if out := ic.ok("task", "list", "--state", "canceled"); !strings.Contains(out, "sync") {
			t.Errorf("the sync was not canceled: %q", out)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// startServerWith starts the server binary on free ports with a fresh data
// directory and a random admin password, and extra flags.
func startServerWith(t *testing.T, bin string, args ...string) (*serverProc, string) {
	t.Helper()
	password := randomHex(12)
	p := &serverProc{name: "mooring", bin: bin, api: freeAddr(t), content: freeAddr(t)}
	p.args = append([]string{"-data-dir", filepath.Join(t.TempDir(), "data"), "-api-addr", p.api, "-content-addr", p.content, "-log-level", "warn"}, args...)
	p.env = []string{"MOORING_ADMIN_PASSWORD=" + password}
	p.start(t)
	return p, password
}

// tmuxSession is a terminal the mooring command runs in.
type tmuxSession struct {
	bin, socket string
}

func startTmux(t *testing.T) *tmuxSession {
	t.Helper()
	bin := requireTool(t, "tmux")
	tm := &tmuxSession{bin: bin, socket: "mooring-test-" + randomHex(6)}
	t.Cleanup(func() { exec.Command(bin, "-L", tm.socket, "kill-server").Run() })
	return tm
}

// start runs mooring with args in a new 160x40 terminal, then prints its
// exit status as EXIT:n and keeps the terminal open.
func (tm *tmuxSession) start(t *testing.T, c *cli, args string) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "run.sh")
	body := "export HOME='" + c.home + "' MOORING_URL='" + c.url + "' TERM=xterm-256color\nunset MOORING_USERNAME MOORING_PASSWORD NETRC\ncd '" + c.dir + "'\n'" +
		c.bin + "' " + args + "\necho EXIT:$?\nsleep 600\n"
	os.WriteFile(script, []byte(body), 0o755)
	if out, err := exec.Command(tm.bin, "-L", tm.socket, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "40", "-s", "t", "bash "+script).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
}

// pane returns what the terminal shows.
func (tm *tmuxSession) pane(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(tm.bin, "-L", tm.socket, "capture-pane", "-p", "-t", "t").CombinedOutput()
	if err != nil {
		t.Fatalf("tmux capture-pane: %v\n%s", err, out)
	}
	return string(out)
}

// waitFor waits until the terminal shows want and returns what it shows.
func (tm *tmuxSession) waitFor(t *testing.T, want string) string {
	t.Helper()
	var pane string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if pane = tm.pane(t); strings.Contains(pane, want) {
			return pane
		}
	}
	t.Fatalf("the terminal never showed %q:\n%s", want, pane)
	return ""
}

// keys types keys into the terminal.
func (tm *tmuxSession) keys(t *testing.T, keys ...string) {
	t.Helper()
	if out, err := exec.Command(tm.bin, append([]string{"-L", tm.socket, "send-keys", "-t", "t"}, keys...)...).CombinedOutput(); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

// run runs mooring in the terminal until it exits and returns the screen.
func (tm *tmuxSession) run(t *testing.T, c *cli, args string) string {
	t.Helper()
	tm.start(t, c, args)
	return tm.waitFor(t, "EXIT:")
}
