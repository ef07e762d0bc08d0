package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/transport/wstest"
)

// fastGossip speeds up memberlist's gossip so that joins and leaves spread
// in milliseconds. Failure detection keeps the LAN timings: these tests do
// not kill nodes, and on a loaded machine under the race detector shorter
// probes would declare healthy nodes dead.
func fastGossip(c *memberlist.Config) {
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = time.Second
}

// startCluster starts n in-process nodes joined to the first and waits
// until every node has a link up to every other.
func startCluster(t *testing.T, n int) []*node {
	t.Helper()
	return startClusterWith(t, n, func() config { return testNodeConfig(t) })
}

// startClusterWith is startCluster with each node's config from newConfig.
func startClusterWith(t *testing.T, n int, newConfig func() config) []*node {
	t.Helper()
	var nodes []*node
	for i := range n {
		cfg := newConfig()
		cfg.name = fmt.Sprintf("node-%d", i)
		if i > 0 {
			cfg.join = "127.0.0.1:" + strconv.Itoa(nodes[0].cluster.GossipPort())
		}
		nodes = append(nodes, startTestNode(t, cfg, nodeOptions{memberlist: fastGossip}))
	}
	wstest.WaitFor(t, 20*time.Second, "full mesh of peer links", func() bool {
		for _, nd := range nodes {
			if upLinks(nd) != n-1 {
				return false
			}
		}
		return true
	})
	return nodes
}

func upLinks(n *node) int {
	up := 0
	for _, l := range n.cluster.Stats().Links {
		if l.State == "up" {
			up++
		}
	}
	return up
}

// TestClusterPublishReachesEveryNodeOnce: a publish on each of 5 nodes
// reaches a subscriber on every node exactly once.
func TestClusterPublishReachesEveryNodeOnce(t *testing.T) {
	nodes := startCluster(t, 5)
	subs := make([]*wstest.Client, len(nodes))
	for i, nd := range nodes {
		subs[i] = wstest.Dial(t, nd.wsURL())
		subs[i].MustAck(`{"op":"sub","ch":"everywhere","id":1}`)
	}
	for i, nd := range nodes {
		pub := wstest.Dial(t, nd.wsURL())
		pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":"everywhere","data":%d,"id":1}`, i))
	}
	for i, c := range subs {
		seen := map[float64]int{}
		for range nodes {
			m := c.ReadJSON()
			seen[m["data"].(float64)]++
		}
		for j := range nodes {
			if seen[float64(j)] != 1 {
				t.Fatalf("subscriber on node %d saw publish %d %d times: %v", i, j, seen[float64(j)], seen)
			}
		}
		// Exactly once: a marker published now is the next message.
		if i == 0 {
			wstest.Dial(t, nodes[4].wsURL()).MustAck(`{"op":"pub","ch":"everywhere","data":"end","id":1}`)
		}
	}
	for i, c := range subs {
		if m := c.ReadJSON(); m["data"] != "end" {
			t.Fatalf("node %d: extra delivery %v", i, m)
		}
	}
}

// TestClusterPublisherOrder: 3,000 publishes from one client arrive in
// order on another node.
func TestClusterPublisherOrder(t *testing.T) {
	nodes := startCluster(t, 2)
	sub := wstest.Dial(t, nodes[1].wsURL())
	sub.MustAck(`{"op":"sub","ch":"ordered","id":1}`)
	pub := wstest.Dial(t, nodes[0].wsURL())
	const n = 3000
	go func() {
		for i := range n {
			if pub.WriteText(fmt.Sprintf(`{"op":"pub","ch":"ordered","data":%d}`, i)) != nil {
				return
			}
		}
	}()
	for i := range n {
		if m := sub.ReadJSON(); m["data"] != float64(i) {
			t.Fatalf("delivery %d: %v", i, m)
		}
	}
}

// TestClusterSubscribeThenPublish: 200 rounds of subscribe on B and
// publish on A right after the ack lose nothing (guarantee 1).
func TestClusterSubscribeThenPublish(t *testing.T) {
	nodes := startCluster(t, 3)
	pub := wstest.Dial(t, nodes[0].wsURL())
	for round := range 200 {
		ch := fmt.Sprintf("round-%d", round)
		sub := wstest.Dial(t, nodes[1+round%2].wsURL())
		sub.MustAck(`{"op":"sub","ch":"` + ch + `","id":1}`)
		pub.MustAck(`{"op":"pub","ch":"` + ch + `","data":"x","id":1}`)
		if m := sub.ReadJSON(); m["op"] != "msg" || m["ch"] != ch {
			t.Fatalf("round %d: %v", round, m)
		}
		sub.Conn.Close()
	}
}

// TestClusterLeaveClosesClients: a node that shuts down closes its
// clients with 1001 and the others stop counting it as a member.
func TestClusterLeaveClosesClients(t *testing.T) {
	nodes := startCluster(t, 3)
	c := wstest.Dial(t, nodes[2].wsURL())
	c.MustAck(`{"op":"sub","ch":"x","id":1}`)
	stopped := make(chan struct{})
	go func() { defer close(stopped); stopNode(t, nodes[2]) }()
	code, _ := c.ExpectClose()
	<-stopped
	if code != 1001 {
		t.Fatalf("close %d, want 1001", code)
	}
	wstest.WaitFor(t, 10*time.Second, "peers drop the node that left", func() bool {
		return upLinks(nodes[0]) == 1 && upLinks(nodes[1]) == 1
	})
}
