package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestClusterForms(t *testing.T) {
	start := time.Now()
	nodes := startCluster(t, 5)
	for _, n := range nodes {
		s := n.Stats()
		if len(s.Members) != 5 || len(s.Links) != 4 {
			t.Fatalf("%s: %d members, %d links; want 5 and 4", n.Name(), len(s.Members), len(s.Links))
		}
		for _, m := range s.Members {
			if m.Name == n.Name() {
				continue // this node: no since
			}
			if since, err := time.Parse(time.RFC3339Nano, m.Since); err != nil || since.Before(start) {
				t.Fatalf("%s: member %s alive since %q, want when it joined", n.Name(), m.Name, m.Since)
			}
		}
		if s.HandshakeFailures != 0 || s.MalformedFrames != 0 {
			t.Fatalf("%s: handshake failures %d, malformed %d", n.Name(), s.HandshakeFailures, s.MalformedFrames)
		}
	}
}

func TestPublishReachesOnlyInterested(t *testing.T) {
	nodes := startCluster(t, 5)
	interested := map[int]bool{1: true, 3: true}
	for i := range interested {
		subscribe(t, nodes[i], "news")
	}
	for i, n := range nodes {
		n.publish("news", []byte("from-"+strconv.Itoa(i)), "", nil, nil)
		n.publish("other", []byte("nobody wants this"), "", nil, nil)
	}
	for i := range interested {
		var want []string
		for j := range nodes {
			if j != i { // local delivery is the hub's job
				want = append(want, "from-"+strconv.Itoa(j))
			}
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("n%d to get 4 publishes", i), func() bool {
			return len(nodes[i].rec.on("news")) >= len(want)
		})
		got := nodes[i].rec.on("news")
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("n%d got %v, want %v (exactly once each)", i, got, want)
		}
	}
	// Sender counters are definitive: a publish is only queued for
	// interested peers.
	for i, n := range nodes {
		for j, other := range nodes {
			if i == j {
				continue
			}
			l, ok := linkTo(n.Cluster, other.Name())
			if !ok {
				t.Fatalf("n%d has no link to n%d", i, j)
			}
			want := uint64(0)
			if interested[j] {
				want = 1
			}
			if l.MsgsSent != want || l.Drops != 0 || l.DropsLinkDown != 0 {
				t.Fatalf("n%d->n%d: sent %d (want %d), drops %d/%d", i, j, l.MsgsSent, want, l.Drops, l.DropsLinkDown)
			}
		}
	}
	for i, n := range nodes {
		if !interested[i] && n.rec.total() != 0 {
			t.Fatalf("uninterested n%d received %d messages", i, n.rec.total())
		}
	}
}

func TestPerPublisherFIFO(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	subscribe(t, b, "seq")
	const n = 3000
	for i := range n {
		a.publish("seq", []byte(strconv.Itoa(i)), "", nil, nil)
	}
	waitFor(t, 10*time.Second, "3000 publishes", func() bool { return len(b.rec.on("seq")) >= n })
	got := b.rec.on("seq")
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, s := range got {
		if s != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: out of order", i, s)
		}
	}
}

// Guarantee 1: once awaitConfirmed returns, a publish made right after on
// any other node reaches the subscriber's node.
func TestSubscribeThenPublishLosesNothing(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const rounds = 200
	for i := range rounds {
		ch := "round-" + strconv.Itoa(i)
		subscribe(t, b, ch)
		a.publish(ch, []byte("a"), "", nil, nil)
		c.publish(ch, []byte("c"), "", nil, nil)
	}
	for i := range rounds {
		ch := "round-" + strconv.Itoa(i)
		waitFor(t, 5*time.Second, ch, func() bool { return len(b.rec.on(ch)) == 2 })
	}
	if got := b.rec.total(); got != 2*rounds {
		t.Fatalf("received %d, want %d", got, 2*rounds)
	}
	if s := b.Stats(); s.InterestTimeouts != 0 {
		t.Fatalf("%d interest timeouts", s.InterestTimeouts)
	}
}

func TestInterestRemovalStopsTraffic(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	subscribe(t, b, "x")
	subscribe(t, b, "marker")
	a.publish("x", []byte("1"), "", nil, nil)
	waitFor(t, 5*time.Second, "first publish", func() bool { return len(b.rec.on("x")) == 1 })

	unsubscribe(t, b, "x") // waits for the removal's ack
	before, _ := linkTo(a.Cluster, "n1")
	a.publish("x", []byte("2"), "", nil, nil)
	a.publish("marker", []byte("m"), "", nil, nil)
	// FIFO: had "x" been sent, it would arrive before the marker.
	waitFor(t, 5*time.Second, "marker", func() bool { return len(b.rec.on("marker")) == 1 })
	if got := b.rec.on("x"); len(got) != 1 {
		t.Fatalf("after removal got %v", got)
	}
	after, _ := linkTo(a.Cluster, "n1")
	if after.MsgsSent != before.MsgsSent+1 { // the marker only
		t.Fatalf("sent %d publishes after removal, want 1 (the marker)", after.MsgsSent-before.MsgsSent)
	}
	if after.InterestedChannels != 1 {
		t.Fatalf("a thinks b wants %d channels, want 1", after.InterestedChannels)
	}
}

func TestConfirmedWithoutPeers(t *testing.T) {
	n := startNode(t, testConfig("alone"))
	if tk := n.subscribe("solo"); !n.confirmed(tk) {
		t.Fatal("a subscribe with no peers is not confirmed at once")
	}
}
