package main

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The coordinator re-executes os.Executable(), which in tests is this
	// test binary: become a worker instead of running the tests.
	if id := os.Getenv(workerEnv); id != "" {
		os.Exit(runWorker(id))
	}
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
