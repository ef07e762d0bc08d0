package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel send sig to a child if the coordinator
// dies without cleaning up, so no run leaves load generators or nodes
// behind.
func setDeathSignal(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
}
