package main_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/testproc"
)

// TestServicesOffAndGeneratedPassword starts the binary configured through
// MOORING_* variables with the API and the workers off: only the registry
// answers, the first start prints a generated admin password and the
// second does not, and SIGTERM stops it cleanly.
func TestServicesOffAndGeneratedPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	dir := t.TempDir()
	bin := buildServer(t)
	content := freeAddr(t)
	start := func() string {
		t.Helper()
		cmd := exec.Command(bin)
		cmd.Env = append(withoutVar(os.Environ(), "MOORING_ADMIN_PASSWORD"), "MOORING_API_ADDR=",
			"MOORING_CONTENT_ADDR="+content, "MOORING_WORKERS=0", "MOORING_DATA_DIR="+filepath.Join(dir, "data"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "http://"+content+"/v2/")
		resp, err := http.Get("http://" + content + "/v2/_catalog")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("catalog: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		if killed, err := testproc.Terminate(cmd, 30*time.Second); killed {
			t.Fatal("no exit within 30s of SIGTERM")
		} else if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), `"msg":"service off","service":"api"`) || !strings.Contains(stderr.String(), "task workers off") {
			t.Errorf("log does not say the API and workers are off:\n%s", stderr.String())
		}
		return stdout.String()
	}
	first := start()
	if !strings.Contains(first, `Generated password for the REST API user "admin": `) {
		t.Errorf("first start printed %q, want a generated password", first)
	}
	if second := start(); second != "" {
		t.Errorf("second start printed %q, want nothing", second)
	}
}

func freeAddr(t *testing.T) string {
	addr, err := testproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// withoutVar drops variable key from env, so that it is unset even when
// the test runner's environment has it.
func withoutVar(env []string, key string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return out
}
