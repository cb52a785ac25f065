package main_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testproc"
)

// TestFirstRun meets the server as a new user would: malformed settings
// are refused naming the flag, before anything is made; a start that
// fails prints no password; the first start that succeeds prints one, in
// the ~/.netrc lines the README's walk-through uses; -reset-admin-password
// sets a new one later; log durations read as durations.
func TestFirstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	env := withoutVar(os.Environ(), "MOORING_ADMIN_PASSWORD")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-storage", "file://"}, `-storage: "file://" names no directory`},
		{[]string{"-storage", "file:relative"}, `-storage: "file:relative": want file://DIR`},
		{[]string{"-database", "mysql://x"}, `-database: invalid database DSN: "mysql://x": mysql is not a database Mooring speaks`},
		{[]string{"-allowed-paths", "relative/dir"}, "-allowed-paths"},
	} {
		dir := t.TempDir()
		cmd := exec.Command(bin, append(c.args, "-api-addr", "", "-content-addr", "", "-workers", "0")...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: %v, output %q; want an error saying %q", c.args, err, out, c.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%v left %v behind", c.args, entries)
		}
	}

	// A start that fails (its registry port is taken) prints no password.
	data := filepath.Join(t.TempDir(), "data")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := freeAddr(t)
	cmd := exec.Command(bin, "-data-dir", data, "-api-addr", api, "-content-addr", taken.Addr().String())
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	taken.Close()
	if err == nil || strings.Contains(strings.ToLower(string(out)), "password") {
		t.Errorf("a start on a taken port: %v, printed %q", err, out)
	}

	// The first start that succeeds prints the password as ~/.netrc lines.
	content := freeAddr(t)
	start := func(extra ...string) (*exec.Cmd, *testproc.Buffer, *bytes.Buffer) {
		cmd := exec.Command(bin, append([]string{"-data-dir", data, "-api-addr", api, "-content-addr", content, "-log-level", "debug"}, extra...)...)
		cmd.Env = env
		var stdout bytes.Buffer
		stderr := &testproc.Buffer{}
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { testproc.Terminate(cmd, 10*time.Second) })
		waitFor(t, "http://"+api+"/healthz")
		return cmd, stderr, &stdout
	}
	srv, logs, stdout := start()
	m := regexp.MustCompile(`(?m)^machine localhost\nlogin admin\npassword (\S+)$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("the first start printed %q, want the ~/.netrc lines", stdout.String())
	}
	first := m[1]
	if status(t, api, "admin", first) != http.StatusOK {
		t.Errorf("the printed password does not work")
	}
	// A request logs its duration as a duration, and its id.
	// The line is written once the answer is sent: wait for it.
	line := ""
	for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		line = findLine(logs.String(), `"msg":"request"`)
	}
	if !regexp.MustCompile(`"duration":"[0-9.]+(ns|µs|ms|s)"`).MatchString(line) || !strings.Contains(line, `"request_id":"`) {
		t.Errorf("request log line %q: want a readable duration and a request id", line)
	}
	testproc.Terminate(srv, 10*time.Second)
	if strings.Contains(logs.String(), first) {
		t.Error("the password was logged")
	}

	// Later: a new password, printed; the old one stops working.
	reset := exec.Command(bin, "-data-dir", data, "-reset-admin-password")
	reset.Env = env
	out, err = reset.CombinedOutput()
	m = regexp.MustCompile(`(?m)^password (\S+)$`).FindStringSubmatch(string(out))
	if err != nil || m == nil || m[1] == first {
		t.Fatalf("-reset-admin-password: %v, %q", err, out)
	}
	start()
	if status(t, api, "admin", m[1]) != http.StatusOK || status(t, api, "admin", first) != http.StatusUnauthorized {
		t.Errorf("after the reset, the new password or the old one does not do what it should")
	}
}

func status(t *testing.T, api, user, password string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+api+"/pulp/api/v3/repositories/", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func findLine(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
