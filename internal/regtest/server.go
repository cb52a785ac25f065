// Package regtest starts registries for tests and benchmarks and pushes
// deterministic test images to them.
//
// Two registries are available: CNCF distribution (the Debian
// docker-registry binary) as a real server on a loopback port, and
// go-containerregistry's pkg/registry in process, which is faster to start
// and accepts anything, such as Docker schema 1 manifests or foreign layers.
package regtest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/mooring-dev/mooring/internal/testproc"
)

// DistributionBinary is the CNCF distribution server Debian installs with
// the docker-registry package.
const DistributionBinary = "docker-registry"

// StartInProcess serves go-containerregistry's registry from an
// httptest.Server, closed when the test ends, and returns its host:port.
func StartInProcess(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(InProcessHandler())
	tb.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// InProcessHandler returns a fresh go-containerregistry registry handler
// with in-memory storage and without request logging, to put behind test
// middleware (authentication, fault injection) before serving it.
func InProcessHandler() http.Handler {
	return registry.New(registry.Logger(discardLogger()))
}

// StartDistribution starts the docker-registry binary on a free loopback
// port with storage in a temporary directory, stops it when the test ends,
// and returns its host:port. The test is skipped, saying why, when the binary
// is not installed.
func StartDistribution(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath(DistributionBinary); err != nil {
		tb.Skipf("CNCF distribution not installed (%s not in PATH; apt-get install docker-registry, as .ci/run does)", DistributionBinary)
	}
	d, err := RunDistribution(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Logf("stop docker-registry: %v", err)
		}
	})
	return d.Host
}

// Distribution is a running docker-registry process.
type Distribution struct {
	// Host is the host:port it listens on, on 127.0.0.1.
	Host string
	cmd  *exec.Cmd
	out  *testproc.Buffer
	done chan struct{}
}

// RunDistribution starts docker-registry with storage under root, on a free
// loopback port, and waits until it answers GET /v2/. The caller stops it
// with Stop. It is StartDistribution for programs, such as benchmarks, that
// have no testing.TB.
func RunDistribution(root string) (*Distribution, error) {
	return RunDistributionWith(root, DistributionOptions{})
}

// RunDistributionWith is RunDistribution with options: basic auth, or
// running as a pull-through cache of another registry.
func RunDistributionWith(root string, opts DistributionOptions) (*Distribution, error) {
	bin, err := exec.LookPath(DistributionBinary)
	if err != nil {
		return nil, fmt.Errorf("CNCF distribution not installed: %w", err)
	}
	var lastErr error
	// A port found free may be taken before the server binds it: try again.
	for range 3 {
		host, err := testproc.FreeAddr()
		if err != nil {
			return nil, err
		}
		d, err := startDistribution(bin, root, host, opts)
		if err == nil {
			return d, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// distributionConfig is the server's configuration: filesystem storage,
// deletes enabled, no auth, quiet logs. The Debian default config
// (/etc/docker/registry/config.yml) turns on htpasswd auth and listens on
// every interface, so it is not used.
const distributionConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  headers:
    X-Content-Type-Options: [nosniff]
`

func startDistribution(bin, root, host string, opts DistributionOptions) (*Distribution, error) {
	storage := filepath.Join(root, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	extra, err := opts.config(root)
	if err != nil {
		return nil, err
	}
	config := filepath.Join(root, "config.yml")
	if err := os.WriteFile(config, append(fmt.Appendf(nil, distributionConfig, storage, host), extra...), 0o644); err != nil {
		return nil, err
	}
	out := &testproc.Buffer{Limit: 1 << 20}
	cmd := exec.Command(bin, "serve", config)
	cmd.Stdout, cmd.Stderr = out, out
	testproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &Distribution{Host: host, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return nil, fmt.Errorf("docker-registry on %s exited at start: %s", host, out.String())
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			// With auth, the version check asks for credentials.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized && len(opts.Users) > 0 {
				return d, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Stop()
	return nil, fmt.Errorf("docker-registry on %s did not answer within 15s: %s", host, out.String())
}

// Stop kills the server and waits for it to exit.
func (d *Distribution) Stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	if err := d.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-d.done
	return nil
}

// Output returns what the server has logged so far.
func (d *Distribution) Output() string { return d.out.String() }
