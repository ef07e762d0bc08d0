package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill a worker if the coordinator dies
// without cleaning up, so no run leaves load generators behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
