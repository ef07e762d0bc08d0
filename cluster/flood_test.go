package cluster

import (
	"testing"
	"time"
)

// TestSilentConnectionsAreCapped: connections to the peer port that never
// handshake hold at most maxPendingHandshakes slots; the next one is
// closed at once and counted, and once they go a real link comes up.
func TestSilentConnectionsAreCapped(t *testing.T) {
	a := startNode(t, testConfig("a"))
	var silent []interface{ Close() error }
	for range maxPendingHandshakes {
		conn, _ := dialPeer(t, a)
		silent = append(silent, conn)
	}
	waitFor(t, 5*time.Second, "every handshake slot taken", func() bool {
		return len(a.handshakeSlots) == maxPendingHandshakes
	})
	extra, _ := dialPeer(t, a)
	expectClosed(t, extra) // closed at once, well before HandshakeTimeout
	if got := a.Stats().HandshakeFailures; got != 1 {
		t.Fatalf("handshake failures = %d, want 1", got)
	}
	for _, c := range silent {
		c.Close()
	}
	waitFor(t, 5*time.Second, "slots released", func() bool { return len(a.handshakeSlots) == 0 })

	cfg := testConfig("b")
	cfg.Join = []string{a.gossipAddr()}
	b := startNode(t, cfg)
	waitFor(t, 10*time.Second, "links up", func() bool { return fullyLinked(a, 2) && fullyLinked(b, 2) })
}
