// Package testproc holds what tests and benchmarks need to run a server or
// a client binary as a child process: where the binary is, a free loopback
// address to give it, a buffer for its output, a tie between its life and
// the test's, and a clean stop.
//
// It imports only the standard library, so that packages of every layer,
// storage/s3/s3test among them, can use it.
package testproc

import (
	"bytes"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// LookPath returns the path of the executable name: on $PATH, else, for
// tools installed with go install, in $GOBIN or in the bin directory of
// the first $GOPATH entry.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if paths := filepath.SplitList(build.Default.GOPATH); len(paths) > 0 {
		dirs = append(dirs, filepath.Join(paths[0], "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not on $PATH nor in %v", name, dirs)
}

// FreeAddr returns a loopback host:port nothing listens on now. Something
// else may take it before the caller's server binds it, so callers retry
// with a fresh address when their server fails to start.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Buffer collects a process's output, written from the goroutines that
// copy it and read on failure. The zero value keeps everything; with Limit
// set it stops keeping once it holds more than Limit bytes, since the start
// is where the useful errors are.
type Buffer struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps p unless the buffer is past its Limit, and never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.buf.Len() > b.Limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns what has been kept so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Terminate sends SIGTERM to cmd's started process and waits up to grace
// for it to exit, returning the error of its exit. A process still running
// after grace is killed and waited for, and killed is true.
func Terminate(cmd *exec.Cmd, grace time.Duration) (killed bool, err error) {
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return false, err
	case <-time.After(grace):
		cmd.Process.Kill()
		return true, <-exited
	}
}
