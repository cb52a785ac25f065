package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestClientsPrivate drives the token flow with real clients against a
// private distribution: skopeo, podman, oras and crane pull it with the
// credentials of a user holding the consumer role on its namespace (podman
// after podman login), and are refused without credentials or with a user
// holding no role.
func TestClientsPrivate(t *testing.T) {
	if testing.Short() {
		t.Skip("client tests skipped in -short mode")
	}
	bin := buildServer(t)
	p, password := startConformanceServer(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	api := func(method, path string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+p.api+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s %v", method, path, resp.Status, out)
		}
		return out
	}
	for _, u := range []string{"reader", "stranger"} {
		api("POST", "/pulp/api/v3/users/", map[string]any{"username": u, "password": u + "-password"})
	}
	api("POST", "/pulp/api/v3/users/reader/roles/", map[string]any{"role": "consumer", "kind": "namespace", "object": "secret"})

	skopeo := requireTool(t, "skopeo")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	writeTar(t, rootfs, "hello.txt", []byte("private "+randomHex(8)))
	oci := filepath.Join(dir, "layout")
	// An image built here, pushed by the admin through the token flow.
	run(t, ctx, skopeo, "copy", "tarball:"+rootfs, "oci:"+oci+":v1")
	ref := p.content + "/secret/app:v1"
	run(t, ctx, skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", "admin:"+password, "oci:"+oci+":v1", "docker://"+ref)
	dists := api("GET", "/pulp/api/v3/docker-distributions/?base_path=secret/app", nil)["results"].([]any)
	api("PATCH", dists[0].(map[string]any)["_href"].(string), map[string]any{"private": true})
	want, _, err := fetchManifestAs(ctx, p.content, "secret/app", "v1", "admin", password)
	if err != nil {
		t.Fatal(err)
	}

	// skopeo: refused anonymously and as a stranger, allowed as reader.
	inspect := func(creds ...string) error {
		args := append([]string{"inspect", "--raw", "--tls-verify=false"}, creds...)
		return exec.CommandContext(ctx, skopeo, append(args, "docker://"+ref)...).Run()
	}
	if inspect("--no-creds") == nil {
		t.Error("skopeo read the private image without credentials")
	}
	if inspect("--creds", "stranger:stranger-password") == nil {
		t.Error("skopeo read the private image as a user with no role")
	}
	if err := inspect("--creds", "reader:reader-password"); err != nil {
		t.Errorf("skopeo as reader: %v", err)
	}

	t.Run("podman", func(t *testing.T) {
		podman := requireTool(t, "podman")
		env := append(os.Environ(), podmanConfig(t, t.TempDir())...)
		env = append(env, "REGISTRY_AUTH_FILE="+filepath.Join(t.TempDir(), "auth.json"))
		runEnv(t, ctx, env, podman, "login", "--tls-verify=false", "-u", "reader", "-p", "reader-password", p.content)
		runEnv(t, ctx, env, podman, "pull", "--tls-verify=false", ref)
		if got := runEnv(t, ctx, env, podman, "image", "inspect", "--format", "{{.Digest}}", ref); got != want.String() {
			t.Errorf("podman pulled %s, want %s", got, want)
		}
	})
	t.Run("oras", func(t *testing.T) {
		oras := requireTool(t, "oras")
		if out, err := exec.CommandContext(ctx, oras, "manifest", "fetch", "--plain-http", ref).CombinedOutput(); err == nil {
			t.Errorf("oras fetched the private manifest anonymously: %s", out)
		}
		got := run(t, ctx, oras, "manifest", "fetch", "--plain-http", "-u", "reader", "-p", "reader-password", "--descriptor", ref)
		if !strings.Contains(got, want.String()) {
			t.Errorf("oras as reader: %s, want %s", got, want)
		}
	})
	t.Run("crane", func(t *testing.T) {
		crane := requireTool(t, "crane")
		env := append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
		if out, err := exec.CommandContext(ctx, crane, "digest", "--insecure", ref).CombinedOutput(); err == nil {
			t.Errorf("crane read the private image anonymously: %s", out)
		}
		runEnv(t, ctx, env, crane, "auth", "login", "--insecure", p.content, "-u", "reader", "-p", "reader-password")
		if got := runEnv(t, ctx, env, crane, "digest", "--insecure", ref); got != want.String() {
			t.Errorf("crane digest as reader: %s, want %s", got, want)
		}
	})
}

func run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	return runEnv(t, ctx, nil, name, args...)
}

func runEnv(t *testing.T, ctx context.Context, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// fetchManifestAs GETs a manifest with HTTP Basic credentials and returns
// the digest of the bytes received.
func fetchManifestAs(ctx context.Context, host, repo, ref, user, pass string) (digest.Digest, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s:%s: %s %v", repo, ref, resp.Status, err)
	}
	return digest.FromBytes(raw), resp.Header.Get("Content-Type"), nil
}
