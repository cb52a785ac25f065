package examples_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
)

// TestEmbed builds examples/embed, a program in a module of its own that
// embeds Mooring as any outside program would, runs it against an
// upstream registry on loopback, and pulls both what it synced and what it
// pushed with skopeo, checking digests against the upstream and what the
// program printed; its own route answers beside the registry.
func TestEmbed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module; skipped in -short mode")
	}
	skopeo, err := testproc.LookPath("skopeo")
	if err != nil {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatal("MOORING_TEST_REQUIRE is set but skopeo is not installed")
		}
		t.Skip("skopeo is not installed (apt-get install skopeo)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	upstream := regtest.StartInProcess(t)
	want, err := regtest.PushImage(ctx, upstream, "library/hello", "latest", regtest.ImageOpts{Layers: 2, Seed: "embed"})
	if err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "embed")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = "embed"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/embed in its own module: %v\n%s", err, out)
	}
	addr, err := testproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-upstream", "http://"+upstream, "-repository", "library/hello", "-listen", addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testproc.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testproc.Terminate(cmd, 10*time.Second) })
	lines := bufio.NewScanner(stdout)
	var pushed digest.Digest
	for lines.Scan() {
		line := lines.Text()
		if d, ok := strings.CutPrefix(line, "pushed built/hello:v1 "); ok {
			pushed = digest.Digest(d)
		}
		if strings.HasPrefix(line, "listening on ") {
			break
		}
	}
	if pushed == "" {
		t.Fatalf("the program never said what it pushed and where it listens; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)

	inspect := func(ref string) digest.Digest {
		t.Helper()
		out, err := exec.CommandContext(ctx, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+addr+"/"+ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v; server stderr:\n%s", ref, err, stderr.String())
		}
		return digest.FromBytes(out)
	}
	copyAll := func(ref string) {
		t.Helper()
		out, err := exec.CommandContext(ctx, skopeo, "copy", "--src-tls-verify=false", "docker://"+addr+"/"+ref, "dir:"+t.TempDir()).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", ref, err, out)
		}
	}
	if got := inspect("mirror:latest"); got != want.Digest {
		t.Errorf("synced image: digest %s, upstream has %s", got, want.Digest)
	}
	copyAll("mirror:latest")
	if got := inspect("built/hello:v1"); got != pushed {
		t.Errorf("pushed image: digest %s, the program pushed %s", got, pushed)
	}
	copyAll("built/hello:v1")

	resp, err := http.Get("http://" + addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "embedding service") {
		t.Errorf("the program's own route: %s %q", resp.Status, body)
	}
	// Without an authentication hook, pushes are refused and the version
	// check is open.
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/v2/", http.StatusOK}, {"POST", "/v2/built/hello/blobs/uploads/", http.StatusUnauthorized}} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e json.RawMessage
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %s %s, want %d", c.method, c.path, resp.Status, e, c.want)
		}
	}
}
