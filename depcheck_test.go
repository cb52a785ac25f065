package mooring_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/mooring-dev/mooring"

// layer gives each top-level package its place: a package may import only
// packages of a lower layer. internal helpers sit at the layer of what they
// serve and are checked the same way.
var layer = map[string]int{
	// Below everything, so that it can import no Mooring package: it
	// serves storage/s3/s3test (layer 0) as well as internal/regtest.
	"internal/testproc": -1,
	// The error vocabulary every package wraps: imports nothing of Mooring.
	"content/errdef":   -2,
	"content":          0,
	"storage":          0,
	"internal/secrets": 0,
	"internal/db":      0,
	"internal/dbtest":  1,
	"repository":       1,
	"task":             1, // imports only internal/db and content/errdef: remote's sync runs as a task
	"remote":           2,
	"distribution":     2,
	"internal/regtest": 2,
	// The front door (package mooring, the module root) composes the SDK
	// packages; the server wraps it; programs use either.
	"":         3,
	"server":   4,
	"examples": 5,
	"bench":    5,
}

// top returns the layer key of a package path inside the module.
func top(pkg string) (string, bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	if rel == pkg {
		return "", false // outside the module
	}
	for _, key := range []string{"content/errdef", "internal/secrets", "internal/db", "internal/dbtest", "internal/regtest", "internal/testproc"} {
		if rel == key || strings.HasPrefix(rel, key+"/") {
			return key, true
		}
	}
	first, _, _ := strings.Cut(rel, "/")
	return first, true
}

// TestDependenciesPointOneWay fails when a package imports one of its own
// layer or above: server -> distribution, remote, repository, task ->
// content, storage, never the other way and never sideways.
func TestDependenciesPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from, ok := top(fields[0])
		if !ok {
			continue
		}
		lf, known := layer[from]
		if !known {
			t.Errorf("package %s is in no layer: add %q to the layer map", fields[0], from)
			continue
		}
		for _, imp := range fields[1:] {
			to, ok := top(imp)
			if !ok || to == from {
				continue
			}
			checked++
			lt, known := layer[to]
			if !known {
				t.Errorf("%s imports %s, which is in no layer", fields[0], imp)
			} else if lt >= lf {
				t.Errorf("%s (layer %d) imports %s (layer %d): dependencies must point down", fields[0], lf, imp, lt)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no imports between Mooring packages were checked")
	}
}
