package main_test

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill a server process if the test process
// dies without stopping it, so no server outlives a crashed test.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
