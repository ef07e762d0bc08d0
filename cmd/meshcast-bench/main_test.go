package main

import (
	"github.com/meshcast/meshcast/internal/wait"
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

// waitFor polls cond until it holds or the timeout fails the test.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	wait.For(t, timeout, "the condition", cond)
}
