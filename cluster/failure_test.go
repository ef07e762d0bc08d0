package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// gone: no link, and memberlist reports state (or the member is reaped).
func droppedBy(n *node, name, state string) bool {
	if _, ok := linkTo(n.Cluster, name); ok {
		return false
	}
	st := stateOf(n.Cluster, name)
	return st == state || st == ""
}

func TestLeftAndKilledNodesAreDropped(t *testing.T) {
	nodes := startCluster(t, 4)
	left, killed := nodes[2], nodes[3]
	subscribe(t, left, "c")
	subscribe(t, killed, "c")
	if got := len(nodes[0].table.lookup("c")); got != 2 {
		t.Fatalf("n0 sees %d interested peers, want 2", got)
	}

	shutdown(t, left.Cluster)
	killed.kill()
	for _, n := range nodes[:2] {
		waitFor(t, 10*time.Second, n.Name()+" to drop the left node", func() bool {
			ok := droppedBy(n, "n2", "left")
			if !ok {
				_, l := linkTo(n.Cluster, "n2")
				t.Logf("state %q link %v", stateOf(n.Cluster, "n2"), l)
			}
			return ok
		})
		waitFor(t, 10*time.Second, n.Name()+" to drop the killed node", func() bool { return droppedBy(n, "n3", "dead") })
		if stateOf(n.Cluster, "n2") == "dead" {
			t.Fatalf("%s: a node that left is reported dead", n.Name())
		}
	}
	for _, n := range nodes[:2] {
		waitFor(t, 5*time.Second, n.Name()+" to forget the departed nodes' interest", func() bool {
			return len(n.table.lookup("c")) == 0
		})
		n.publish("c", []byte("after"), "", nil, nil)
		for _, l := range n.Stats().Links {
			if l.Peer != "n0" && l.Peer != "n1" {
				t.Fatalf("%s still has a link to %s", n.Name(), l.Peer)
			}
			if l.MsgsSent != 0 || l.DropsLinkDown != 0 {
				t.Fatalf("%s sent %d / dropped %d to %s", n.Name(), l.MsgsSent, l.DropsLinkDown, l.Peer)
			}
		}
	}
	// The survivors still work together, with no wait on the departed.
	subscribe(t, nodes[1], "d")
	nodes[0].publish("d", []byte("ok"), "", nil, nil)
	waitFor(t, 5*time.Second, "survivor delivery", func() bool { return len(nodes[1].rec.on("d")) == 1 })
}

func TestKilledNodeRestartsAndRejoins(t *testing.T) {
	nodes := startCluster(t, 3)
	victim := nodes[2]
	subscribe(t, victim, "r")
	victim.kill()
	for _, n := range nodes[:2] {
		waitFor(t, 10*time.Second, "victim dropped", func() bool { return droppedBy(n, "n2", "dead") })
	}

	cfg := testConfig("n2") // same name, new ports
	cfg.Join = []string{nodes[0].gossipAddr()}
	back := startNode(t, cfg)
	all := []*node{nodes[0], nodes[1], back}
	waitFor(t, 20*time.Second, "restarted node linked", func() bool {
		for _, n := range all {
			if !fullyLinked(n, 3) {
				return false
			}
		}
		return true
	})
	subscribe(t, back, "r")
	nodes[0].publish("r", []byte("0"), "", nil, nil)
	nodes[1].publish("r", []byte("1"), "", nil, nil)
	waitFor(t, 5*time.Second, "restarted node receives", func() bool { return len(back.rec.on("r")) == 2 })
}

func TestJoinBeforeSeedsAreUp(t *testing.T) {
	seedCfg := testConfig("seed")
	seed, err := New(seedCfg) // ports bound, not started
	if err != nil {
		t.Fatal(err)
	}
	seedNode := &node{Cluster: seed, rec: &recorder{}}
	t.Cleanup(func() { shutdown(t, seed) })
	var others []*node
	for i := range 2 {
		cfg := testConfig(fmt.Sprintf("early%d", i))
		cfg.Join = []string{seedNode.gossipAddr()}
		others = append(others, startNode(t, cfg))
	}
	// The early nodes serve alone meanwhile.
	for _, n := range others {
		subscribe(t, n, "x")
	}
	if _, err := seed.Attach(seedNode.rec, nil); err != nil {
		t.Fatal(err)
	}
	all := append(others, seedNode)
	waitFor(t, 20*time.Second, "cluster to form after the seed came up", func() bool {
		for _, n := range all {
			if !fullyLinked(n, 3) {
				return false
			}
		}
		return true
	})
	seed.publish("x", []byte("hi"), "", nil, nil)
	for _, n := range others {
		waitFor(t, 5*time.Second, "snapshot interest honoured", func() bool { return len(n.rec.on("x")) == 1 })
	}
}

func TestShutdownIdempotentAndUnstarted(t *testing.T) {
	c, err := New(testConfig("idle"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Attach(&recorder{}, nil); err == nil {
		t.Fatal("Attach after Shutdown succeeded")
	}
}
