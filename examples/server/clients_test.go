package main_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
)

// TestClientsPush round-trips content through the built server with the
// clients people push with: podman push then pull of an image, skopeo copy
// --all of an index, oras push, attach, discover and pull of an artifact.
// Each client's subtest is skipped, saying why, when the client is not
// installed, and fails instead when MOORING_TEST_REQUIRE is set.
func TestClientsPush(t *testing.T) {
	if testing.Short() {
		t.Skip("client tests skipped in -short mode")
	}
	bin := buildServer(t)
	p, password := startConformanceServer(t, bin)
	creds := "admin:" + password
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	run := func(t *testing.T, env []string, name string, args ...string) string {
		t.Helper()
		return runIn(t, ctx, "", env, name, args...)
	}

	t.Run("podman", func(t *testing.T) {
		podman := requireTool(t, "podman")
		dir := t.TempDir()
		env := podmanConfig(t, dir)
		// An image made here, without any registry: a one-file root
		// filesystem imported.
		rootfs := filepath.Join(dir, "rootfs.tar")
		writeTar(t, rootfs, "hello.txt", []byte("pushed by podman "+randomHex(8)))
		run(t, env, podman, "import", rootfs, "localhost/clients-test:v1")
		ref := p.content + "/clients/podman:v1"
		digestFile := filepath.Join(dir, "digest")
		run(t, env, podman, "push", "--tls-verify=false", "--creds", creds, "--digestfile", digestFile, "localhost/clients-test:v1", ref)
		raw, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatal(err)
		}
		pushed := digest.Digest(strings.TrimSpace(string(raw)))
		if got, _, err := fetchManifest(ctx, p.content, "clients/podman", "v1"); err != nil || got != pushed {
			t.Fatalf("Mooring serves %s as %s (%v); podman pushed %s", ref, got, err, pushed)
		}
		// Pull into an empty store.
		podmanPull(ctx, t, ref, pushed)
	})

	t.Run("skopeo", func(t *testing.T) {
		skopeo := requireTool(t, "skopeo")
		if _, err := exec.LookPath(regtest.DistributionBinary); err != nil && os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("MOORING_TEST_REQUIRE is set but %s is not installed", regtest.DistributionBinary)
		}
		upstream := regtest.StartDistribution(t)
		amd, err := regtest.PushImage(ctx, upstream, "src", "amd64", regtest.ImageOpts{Seed: "skopeo-amd64", Layers: 2})
		if err != nil {
			t.Fatal(err)
		}
		arm, err := regtest.PushImage(ctx, upstream, "src", "arm64", regtest.ImageOpts{Seed: "skopeo-arm64",
			Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
		if err != nil {
			t.Fatal(err)
		}
		list, err := regtest.PushIndex(ctx, upstream, "src", "latest", regtest.Docker, amd, arm)
		if err != nil {
			t.Fatal(err)
		}
		run(t, nil, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", creds,
			"docker://"+upstream+"/src:latest", "docker://"+p.content+"/clients/skopeo:latest")
		for _, want := range []struct {
			ref string
			d   digest.Digest
		}{{"latest", list.Digest}, {amd.Digest.String(), amd.Digest}, {arm.Digest.String(), arm.Digest}} {
			if got, _, err := fetchManifest(ctx, p.content, "clients/skopeo", want.ref); err != nil || got != want.d {
				t.Errorf("clients/skopeo:%s is %s (%v), want %s", want.ref, got, err, want.d)
			}
		}
		// And back out, every platform, byte for byte.
		out := filepath.Join(t.TempDir(), "out")
		run(t, nil, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "docker://"+p.content+"/clients/skopeo:latest", "dir:"+out)
		raw, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil || digest.FromBytes(raw) != list.Digest {
			t.Errorf("copied back, the list is %s (%v), want %s", digest.FromBytes(raw), err, list.Digest)
		}
	})

	t.Run("oras", func(t *testing.T) {
		oras := requireTool(t, "oras")
		dir := t.TempDir()
		body := []byte("an artifact " + randomHex(8))
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		ref := p.content + "/clients/oras:v1"
		login := []string{"--plain-http", "-u", "admin", "-p", password}
		cmd := append([]string{"push"}, login...)
		cmd = append(cmd, "--artifact-type", "application/vnd.example.notes", "--format", "go-template={{.digest}}", ref, "notes.txt:text/plain")
		pushed := runIn(t, ctx, dir, nil, oras, cmd...)
		// A signature-like artifact attached to it, found by discover.
		if err := os.WriteFile(filepath.Join(dir, "sig.txt"), []byte("signed"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = append([]string{"attach"}, login...)
		cmd = append(cmd, "--artifact-type", "application/vnd.example.sig", "--format", "go-template={{.digest}}", ref, "sig.txt:text/plain")
		sig := runIn(t, ctx, dir, nil, oras, cmd...)
		found := run(t, nil, oras, "discover", "--plain-http", "--format", "json", ref)
		if !strings.Contains(found, sig) || !strings.Contains(found, "application/vnd.example.sig") {
			t.Errorf("oras discover %s does not list the attached %s:\n%s", ref, sig, found)
		}
		out := t.TempDir()
		runIn(t, ctx, out, nil, oras, "pull", "--plain-http", ref)
		got, err := os.ReadFile(filepath.Join(out, "notes.txt"))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("oras pull: %q (%v), want %q", got, err, body)
		}
		if d, _, err := fetchManifest(ctx, p.content, "clients/oras", "v1"); err != nil || d.String() != pushed {
			t.Errorf("clients/oras:v1 is %s (%v), oras pushed %s", d, err, pushed)
		}
	})
}

// requireTool returns the path of a client: on $PATH, else (for Go tools
// such as oras) in $GOBIN or $GOPATH/bin. Missing, the test is skipped, or
// fails under MOORING_TEST_REQUIRE.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := testproc.LookPath(name); err == nil {
		return p
	}
	msg := name + " is not installed (apt-get install podman skopeo; go install oras.land/oras/cmd/oras@v1.3.6)"
	if os.Getenv("MOORING_TEST_REQUIRE") != "" {
		t.Fatal("MOORING_TEST_REQUIRE is set but " + msg)
	}
	t.Skip(msg)
	return ""
}

// runIn runs name in dir (the test's when empty) with env added to the
// test's environment, fails the test if it fails, and returns its output,
// trimmed.
func runIn(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		// Left nil otherwise, so that exec sets PWD to dir.
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// writeTar writes a tar archive holding one file.
func writeTar(t *testing.T, path, name string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)})
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
