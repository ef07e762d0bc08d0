package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAwaitDeadlineIsTheTimeout: a caller's deadline that passes before
// every peer confirmed counts as the interest timeout: the wait ends with
// ErrInterestTimeout and the late peer reports a gap on the channel when
// it confirms (the hub settles many waiting subscribes this way at once).
func TestAwaitDeadlineIsTheTimeout(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	subscribe(t, b, "block")
	release := b.rec.hold()
	defer release()
	a.publish("block", []byte("1"), "", nil, nil) // b's link reader will wait in Deliver, before a's next frames

	tk := a.subscribe("late")
	due, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	if err := a.awaitConfirmed(due, "late", tk); !errors.Is(err, ErrInterestTimeout) {
		t.Fatalf("awaitConfirmed past its deadline: %v, want ErrInterestTimeout", err)
	}
	release()
	waitFor(t, 5*time.Second, "the late peer's gap", func() bool { return a.rec.gapsOn("late") == 1 })
}
