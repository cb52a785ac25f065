package s3test

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill versitygw if the test binary dies
// without running its cleanups (a test timeout, a kill), so that no server
// outlives the tests.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
