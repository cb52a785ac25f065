//go:build !linux

package testproc

import "os/exec"

// DieWithParent does nothing where the kernel offers no parent-death
// signal; the caller's cleanup has to stop the process.
func DieWithParent(*exec.Cmd) {}
