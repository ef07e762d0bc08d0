//go:build !linux

package main

import "os/exec"

// setDeathSignal: elsewhere a worker exits when its stdin closes.
func setDeathSignal(*exec.Cmd) {}
