package cluster

import (
	"sync"
	"testing"
	"time"
)

// rtts records the round trips a cluster reports, by peer.
type rtts struct {
	mu  sync.Mutex
	got map[string][]time.Duration
}

func (r *rtts) LinkRoundTrip(peer string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]time.Duration{}
	}
	r.got[peer] = append(r.got[peer], d)
}

func (r *rtts) count(peer string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[peer])
}

// TestObserverLinkRoundTrip: interest changes are timed until the peer's
// ack, and reported under the peer's name.
func TestObserverLinkRoundTrip(t *testing.T) {
	var obs rtts
	cfg := testConfig("n0")
	cfg.Observer = &obs
	n0 := startNode(t, cfg)
	cfg1 := testConfig("n1")
	cfg1.Join = []string{n0.gossipAddr()}
	n1 := startNode(t, cfg1)
	waitFor(t, 20*time.Second, "cluster to form", func() bool { return fullyLinked(n0, 2) && fullyLinked(n1, 2) })
	subscribe(t, n0, "timed")
	waitFor(t, 5*time.Second, "the subscribe's round trip", func() bool { return obs.count("n1") >= 1 })
	unsubscribe(t, n0, "timed")
	waitFor(t, 5*time.Second, "the unsubscribe's round trip", func() bool { return obs.count("n1") >= 2 })
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, d := range obs.got["n1"] {
		if d <= 0 || d > time.Minute {
			t.Fatalf("round trip %v", d)
		}
	}
	if len(obs.got) != 1 {
		t.Fatalf("round trips reported for %d peers, want only n1", len(obs.got))
	}
}
