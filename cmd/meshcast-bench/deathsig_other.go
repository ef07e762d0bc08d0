//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal: elsewhere a worker exits when its stdin closes, and nodes
// and peer scripts are stopped by the coordinator only.
func setDeathSignal(*exec.Cmd, syscall.Signal) {}
