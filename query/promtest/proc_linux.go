package promtest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill Prometheus if the test binary dies
// without running its cleanups.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func interrupt(cmd *exec.Cmd) error { return cmd.Process.Signal(syscall.SIGTERM) }
