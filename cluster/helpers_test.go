package cluster

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/meshcast/meshcast/internal/wait"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Fuzz workers are restarted by the coordinator; goleak's exit check
	// would stall and kill them.
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testConfig binds loopback port 0 and shortens memberlist's timings: a
// dead node is detected in about 2 s. Not shorter: on a loaded machine
// under the race detector a goroutine can wait a few hundred milliseconds,
// and a node that misses probes for that long must not be declared dead.
func testConfig(name string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.PeerAddr = "127.0.0.1:0"
	cfg.Secret = []byte("test secret")
	cfg.ReconnectInterval = 200 * time.Millisecond
	// A confirmation takes one round trip; the default 2 s ran out once
	// with the process starved (the full -race suite beside another build
	// on 2 cores: a 5-node cluster took 4.6 s to form instead of 1 s).
	// Tests that want the timeout give awaitConfirmed a deadline.
	cfg.InterestTimeout = wait.Scaled(5 * time.Second)
	cfg.Memberlist = testGossip
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	return cfg
}

func testGossip(mc *memberlist.Config) {
	mc.ProbeInterval = 250 * time.Millisecond
	mc.ProbeTimeout = 250 * time.Millisecond
	mc.GossipInterval = 50 * time.Millisecond
	mc.SuspicionMult = 4
	mc.SuspicionMaxTimeoutMult = 2
	mc.PushPullInterval = time.Second
	mc.TCPTimeout = 2 * time.Second
	mc.DeadNodeReclaimTime = 100 * time.Millisecond
}

// waitFor polls cond until it holds or the timeout fails the test.
var waitFor = wait.For

type delivery struct{ ch, data string }

// recorder is a fake Receiver that records deliveries and gaps, and can
// hold its Deliver calls (hold) to stall a link's reader.
type recorder struct {
	mu     sync.Mutex
	got    []delivery
	gaps   []string // one entry per channel per Gap call
	events []string // "msg ch data" and "gap ch", in arrival order
	gate   chan struct{}
	hgate  chan struct{}  // non-nil: History waits for it (holdHistory)
	hist   *history.Store // stamped publishes, as a hub would store them
	pres   presenceModel  // presence_test.go
}

// holdHistory makes History (a peer's fetch) block until the returned
// release is called: the node is alive and linked but does not answer.
func (r *recorder) holdHistory() (release func()) {
	gate := make(chan struct{})
	r.mu.Lock()
	r.hgate = gate
	r.mu.Unlock()
	return sync.OnceFunc(func() { close(gate) })
}

// hold makes Deliver block until the returned release is called.
func (r *recorder) hold() (release func()) {
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	return sync.OnceFunc(func() { close(gate) })
}

func (r *recorder) Gap(chs []string) {
	r.mu.Lock()
	r.gaps = append(r.gaps, chs...)
	for _, ch := range chs {
		r.events = append(r.events, "gap "+ch)
	}
	r.mu.Unlock()
}

func (r *recorder) eventList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// gapsOn counts the gaps reported on ch.
func (r *recorder) gapsOn(ch string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.gaps {
		if g == ch {
			n++
		}
	}
	return n
}

// History serves peers' fetches from what the recorder stored.
func (r *recorder) History(ch string, after history.Frontier, budget int) history.Result {
	r.mu.Lock()
	gate := r.hgate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return r.store().After(ch, after, budget)
}

func (r *recorder) store() *history.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hist == nil {
		r.hist = history.New(64 << 20)
	}
	return r.hist
}

func (r *recorder) Deliver(ch string, data []byte, except string, st *relay.Stamp) {
	if st != nil {
		r.store().Append(ch, history.Limits{Max: 1000}, history.Msg{Stream: st.Stream, Seq: st.Seq, Time: st.Time, Data: bytes.Clone(data)})
	}
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{ch, string(data)})
	r.events = append(r.events, "msg "+ch+" "+string(data)+except)
	r.mu.Unlock()
}

func (r *recorder) on(ch string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.got {
		if d.ch == ch {
			out = append(out, d.data)
		}
	}
	return out
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

type node struct {
	*Cluster
	rec *recorder
}

// startNode creates and starts a node; cleanup shuts it down.
func startNode(t testing.TB, cfg Config) *node {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{Cluster: c, rec: &recorder{}}
	if _, err := c.Attach(n.rec, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, c) })
	return n
}

// kill stops the node without leaving or flushing, as a crash would.
func (c *Cluster) kill() {
	c.shutdownOnce.Do(func() { c.shutdownErr = c.shutdown(context.Background(), false) })
}

func shutdown(t testing.TB, c *Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", c.Name(), err)
	}
}

func (n *node) gossipAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.GossipPort()) }

// startCluster starts n nodes joined to the first and waits until every
// node sees all members alive and all links up both ways.
func startCluster(t testing.TB, n int) []*node {
	t.Helper()
	return startClusterWith(t, n, func(*Config) {})
}

// startClusterWith is startCluster with each node's config adjusted.
func startClusterWith(t testing.TB, n int, adjust func(*Config)) []*node {
	t.Helper()
	cfg := testConfig("n0")
	adjust(&cfg)
	nodes := []*node{startNode(t, cfg)}
	for i := 1; i < n; i++ {
		cfg := testConfig(fmt.Sprintf("n%d", i))
		cfg.Join = []string{nodes[0].gossipAddr()}
		adjust(&cfg)
		nodes = append(nodes, startNode(t, cfg))
	}
	waitFor(t, 20*time.Second, "cluster to form", func() bool {
		for _, nd := range nodes {
			if !fullyLinked(nd, n) {
				return false
			}
		}
		return true
	})
	return nodes
}

// fullyLinked: n alive members and n-1 links up and synced in both
// directions (each side's snapshot applied by the other).
func fullyLinked(nd *node, n int) bool {
	if len(nd.unsyncedPeers()) != 0 {
		return false
	}
	s := nd.Stats()
	alive := 0
	for _, m := range s.Members {
		if m.State == "alive" {
			alive++
		}
	}
	up := 0
	for _, l := range s.Links {
		if l.State == "up" && l.InboundUp {
			up++
		}
	}
	return alive == n && up == n-1
}

func linkTo(c *Cluster, peer string) (LinkStats, bool) {
	for _, l := range c.Stats().Links {
		if l.Peer == peer {
			return l, true
		}
	}
	return LinkStats{}, false
}

func stateOf(c *Cluster, name string) string {
	for _, m := range c.Stats().Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// subscribe counts one local subscriber of ch and waits until every peer
// confirmed it.
func subscribe(t testing.TB, n *node, ch string) {
	t.Helper()
	await(t, n, ch, n.subscribe(ch))
}

// unsubscribe drops one local subscriber of ch and waits until every peer
// confirmed the change.
func unsubscribe(t testing.TB, n *node, ch string) {
	t.Helper()
	n.unsubscribe(ch)
	n.local.mu.Lock()
	seq := n.local.seq
	n.local.mu.Unlock()
	await(t, n, ch, relay.Ticket(seq))
}

func await(t testing.TB, n *node, ch string, tk relay.Ticket) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait.Scaled(5*time.Second))
	defer cancel()
	if err := n.awaitConfirmed(ctx, ch, tk); err != nil {
		t.Fatalf("%s: awaitConfirmed(%q): %v", n.Name(), ch, err)
	}
}
