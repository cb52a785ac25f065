package regtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// DistributionOptions configure a docker-registry beyond the defaults of
// StartDistribution.
type DistributionOptions struct {
	// Users, when not empty, turns on HTTP basic auth (htpasswd) for
	// every request, with these usernames and passwords.
	Users map[string]string
	// ProxyURL, when set, runs the registry as a pull-through cache of
	// the registry at that URL (CNCF distribution's "proxy: remoteurl:"),
	// with ProxyUsername and ProxyPassword when set.
	ProxyURL, ProxyUsername, ProxyPassword string
}

// config returns the YAML to append to the base configuration, writing an
// htpasswd file under root when needed.
func (o DistributionOptions) config(root string) ([]byte, error) {
	var b strings.Builder
	if len(o.Users) > 0 {
		var lines []string
		for user, pass := range o.Users {
			// The minimum cost: the registry checks it on every request.
			hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
			if err != nil {
				return nil, err
			}
			lines = append(lines, user+":"+string(hash))
		}
		slices.Sort(lines)
		file := filepath.Join(root, "htpasswd")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: regtest\n    path: %s\n", file)
	}
	if o.ProxyURL != "" {
		fmt.Fprintf(&b, "proxy:\n  remoteurl: %s\n", o.ProxyURL)
		if o.ProxyUsername != "" {
			fmt.Fprintf(&b, "  username: %s\n  password: %s\n", o.ProxyUsername, o.ProxyPassword)
		}
	}
	return []byte(b.String()), nil
}

// StartDistributionWith is StartDistribution with options.
func StartDistributionWith(tb testing.TB, opts DistributionOptions) *Distribution {
	tb.Helper()
	if _, err := exec.LookPath(DistributionBinary); err != nil {
		tb.Skipf("CNCF distribution not installed (%s not in PATH; apt-get install docker-registry, as .ci/run does)", DistributionBinary)
	}
	d, err := RunDistributionWith(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Logf("stop docker-registry: %v", err)
		}
	})
	return d
}
