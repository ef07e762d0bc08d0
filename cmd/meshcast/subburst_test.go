package main

import (
	"fmt"
	"testing"

	"github.com/meshcast/meshcast/transport/wstest"
)

// TestSubscribeBurstOnHealthyCluster: a client that joins hundreds of new
// channels at once, on a cluster whose peers are all up, gets every sub
// acked: 429 is only for subscribes that wait on a peer that does not
// answer. (A cap of 64 waiting subscribes refused 29-82 of such a burst.)
func TestSubscribeBurstOnHealthyCluster(t *testing.T) {
	nodes := startCluster(t, 3)
	c := wstest.Dial(t, nodes[0].wsURL())
	const burst = 500
	for i := range burst {
		c.SendText(fmt.Sprintf(`{"op":"sub","ch":"burst-%d","id":%d}`, i, i))
	}
	acked := map[float64]bool{}
	for range burst {
		m := c.ReadJSON()
		if m["op"] != "ack" {
			t.Fatalf("after %d acks: %v", len(acked), m)
		}
		acked[m["id"].(float64)] = true
	}
	if len(acked) != burst {
		t.Fatalf("%d distinct acks, want %d", len(acked), burst)
	}
	// Every channel is in place cluster-wide: a publish on another node
	// reaches the client.
	pub := wstest.Dial(t, nodes[2].wsURL())
	pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":"burst-%d","data":"far","id":1}`, burst-1))
	if m := c.ReadJSON(); m["ch"] != fmt.Sprintf("burst-%d", burst-1) || m["data"] != "far" {
		t.Fatalf("got %v", m)
	}
}
