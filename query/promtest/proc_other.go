//go:build !linux

package promtest

import (
	"os"
	"os/exec"
)

func setProcAttr(*exec.Cmd) {}

func interrupt(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }
