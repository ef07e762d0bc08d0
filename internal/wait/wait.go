// Package wait is the tests' one way to wait: poll a condition until it
// holds or a deadline passes. Tests never sleep to synchronise.
//
// Deadlines are generous, since a condition that holds returns at once and
// only a failing test waits them out. On a machine slower than any they
// allow for, MESHCAST_TEST_SLOWDOWN (a number, default 1) multiplies them.
package wait

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// For polls cond every few milliseconds until it returns true, failing
// the test after timeout (times the slowdown) with what it waited for.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	timeout = Scaled(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Scaled is d times MESHCAST_TEST_SLOWDOWN.
func Scaled(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("MESHCAST_TEST_SLOWDOWN"), 64); err == nil && f > 1 {
		return time.Duration(float64(d) * f)
	}
	return d
}
