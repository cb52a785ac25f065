package testproc_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mooring-dev/mooring/internal/testproc"
)

// TestLookPathGOBIN finds a go-installed tool that is not on $PATH in
// $GOBIN, and does not take a file there that cannot be run.
func TestLookPathGOBIN(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", "")
	t.Setenv("GOBIN", dir)
	tool := filepath.Join(dir, "mooring-test-tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mooring-test-data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := testproc.LookPath("mooring-test-tool"); err != nil || p != tool {
		t.Errorf("LookPath(mooring-test-tool) = %q, %v; want %q", p, err, tool)
	}
	if p, err := testproc.LookPath("mooring-test-data"); err == nil {
		t.Errorf("LookPath(mooring-test-data) = %q, want an error for a file that is not executable", p)
	}
}
