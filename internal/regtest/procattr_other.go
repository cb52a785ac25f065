//go:build !linux

package regtest

import "os/exec"

// dieWithParent does nothing where the kernel offers no parent-death
// signal; Stop, run at test cleanup, ends the server.
func dieWithParent(*exec.Cmd) {}
