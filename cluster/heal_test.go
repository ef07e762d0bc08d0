package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hashicorp/memberlist"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// restartConfig is the config of a node restarted under the same name and
// ports as n.
func restartConfig(n *node) Config {
	cfg := testConfig(n.Name())
	cfg.GossipAddr = "127.0.0.1:" + strconv.Itoa(n.GossipPort())
	cfg.PeerAddr = "127.0.0.1:" + strconv.Itoa(n.PeerPort())
	return cfg
}

// TestReconnectLoopRejoinsFailedMember: a member declared dead comes back
// with nobody to join (no seeds): the survivor's reconnect loop finds it,
// and both list each other alive and link again (finding 1: memberlist
// alone never contacts a member it declared dead).
func TestReconnectLoopRejoinsFailedMember(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	b.kill()
	waitFor(t, 10*time.Second, "a declares b dead", func() bool { return stateOf(a.Cluster, "n1") == "dead" })

	back := startNode(t, restartConfig(b)) // no Join: only a's loop can merge them
	waitFor(t, 10*time.Second, "a and the returned b linked", func() bool {
		return fullyLinked(a, 2) && fullyLinked(back, 2)
	})
	subscribe(t, back, "after")
	a.publish("after", []byte("hi"), "", nil, nil)
	waitFor(t, 5*time.Second, "delivery to the returned node", func() bool { return len(back.rec.on("after")) == 1 })
}

// TestLinkResetKeepsInterestAndTellsOnce: while a's link to b reconnects, b
// keeps a's interest (finding 5), so b's publishes still reach a over b's
// own link; a's subscribers get exactly one gap for the reset.
func TestLinkResetKeepsInterestAndTellsOnce(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	subscribe(t, a, "x")
	subscribe(t, b, "y")
	b.publish("x", []byte("before"), "", nil, nil)
	waitFor(t, 5*time.Second, "first delivery", func() bool { return len(a.rec.on("x")) == 1 })

	// Break b's link to a and keep it down: b dials a bogus address.
	pb := b.peer("n0")
	good := pb.getAddr()
	pb.update("127.0.0.1:1", false, 0)
	waitFor(t, 5*time.Second, "a sees the link from b gone", func() bool {
		l, _ := linkTo(a.Cluster, "n1")
		return !l.InboundUp
	})
	if got := len(a.table.lookup("y")); got != 1 {
		t.Fatalf("during the reset a routes y to %d peers, want 1 (b's interest kept)", got)
	}
	a.publish("y", []byte("during"), "", nil, nil)
	waitFor(t, 5*time.Second, "b gets a's publish during the reset", func() bool { return len(b.rec.on("y")) == 1 })
	b.publish("x", []byte("lost"), "", nil, nil)
	if l, _ := linkTo(b.Cluster, "n0"); l.DropsLinkDown != 1 {
		t.Fatalf("b dropped %d publishes for a while down, want 1 (counted)", l.DropsLinkDown)
	}
	if st := b.Stats(); st.PeerDropsLinkDown != 1 || st.PeerDrops != 0 {
		t.Fatalf("b's node-wide drops %d link down, %d queue full; want 1 and 0", st.PeerDropsLinkDown, st.PeerDrops)
	}

	pb.update(good, false, 0)
	waitFor(t, 10*time.Second, "link back and a gap on x", func() bool { return a.rec.gapsOn("x") == 1 })
	b.publish("x", []byte("after"), "", nil, nil)
	waitFor(t, 5*time.Second, "delivery after the reset", func() bool { return len(a.rec.on("x")) == 2 })
	if want := []string{"msg x before", "gap x", "msg x after"}; !slices.Equal(a.rec.eventList(), want) {
		t.Fatalf("a saw %v, want %v", a.rec.eventList(), want)
	}
	if a.rec.gapsOn("y") != 0 {
		t.Fatal("gap on a channel a does not want")
	}
}

// TestLeaveTellsNothingDeathTellsGap: a node that shuts down gracefully
// flushes its links and says bye, so its peers report no gap; a node that
// dies may have had publishes in flight, so they do.
func TestLeaveTellsNothingDeathTellsGap(t *testing.T) {
	nodes := startCluster(t, 3)
	a, leaver, victim := nodes[0], nodes[1], nodes[2]
	subscribe(t, a, "x")
	for i := range 100 {
		leaver.publish("x", []byte("l"+strconv.Itoa(i)), "", nil, nil)
	}
	shutdown(t, leaver.Cluster)
	waitFor(t, 10*time.Second, "a sees the leave", func() bool { return stateOf(a.Cluster, "n1") == "left" })
	if got := len(a.rec.on("x")); got != 100 {
		t.Fatalf("a got %d of the leaver's 100 publishes", got)
	}
	if n := a.rec.gapsOn("x"); n != 0 {
		t.Fatalf("%d gaps after a graceful leave", n)
	}

	victim.kill()
	waitFor(t, 10*time.Second, "a gap for the dead node", func() bool { return a.rec.gapsOn("x") == 1 })
	if st := a.Stats(); st.GapIncidents != 1 || st.GapChannels != 1 {
		t.Fatalf("gap stats %d incidents, %d channels; want 1 and 1", st.GapIncidents, st.GapChannels)
	}
}

// TestFullQueueSendsGapFrame: when a link's queue is full, the publishes
// dropped for it are named in a gap frame that arrives right after what
// was queued before them.
func TestFullQueueSendsGapFrame(t *testing.T) {
	cfgA := testConfig("n0")
	cfgA.LinkQueueSize = 8
	a := startNode(t, cfgA)
	cfgB := testConfig("n1")
	cfgB.Join = []string{a.gossipAddr()}
	b := startNode(t, cfgB)
	waitFor(t, 20*time.Second, "linked", func() bool { return fullyLinked(a, 2) && fullyLinked(b, 2) })
	subscribe(t, b, "x")

	release := b.rec.hold() // b's reader stops: a's socket, then a's queue, fill up
	payload := strings.Repeat("p", 8<<10)
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	for l, _ := linkTo(a.Cluster, "n1"); l.Drops == 0; l, _ = linkTo(a.Cluster, "n1") {
		if time.Now().After(deadline) {
			t.Fatal("the link queue never filled")
		}
		a.publish("x", []byte(strconv.Itoa(sent)+payload), "", nil, nil)
		sent++
	}
	release()
	waitFor(t, 20*time.Second, "the gap frame", func() bool { return b.rec.gapsOn("x") == 1 })
	a.publish("x", []byte("end"), "", nil, nil)
	waitFor(t, 20*time.Second, "the marker", func() bool { return slices.Contains(b.rec.on("x"), "end") })

	events := b.rec.eventList()
	gapAt := slices.Index(events, "gap x")
	for i, e := range events[:gapAt] {
		if !strings.HasPrefix(e, "msg x "+strconv.Itoa(i)+"p") {
			t.Fatalf("event %d before the gap is %.20q: publishes before the drop must all arrive, in order", i, e)
		}
	}
	if rest := events[gapAt+1:]; rest[len(rest)-1] != "msg x end" {
		t.Fatalf("last event %.20q, want the marker", rest[len(rest)-1])
	}
	l, _ := linkTo(a.Cluster, "n1")
	if got := uint64(len(b.rec.on("x"))); got+l.Drops != uint64(sent)+1 {
		t.Fatalf("delivered %d + dropped %d != published %d: something vanished silently", got, l.Drops, sent+1)
	}
}

// TestStallRefusesUntilPeersConfirm: after the process was found frozen,
// standing is ErrResyncing until every peer acked a fresh mark.
func TestStallRefusesUntilPeersConfirm(t *testing.T) {
	nodes := startCluster(t, 3)
	n := nodes[0]
	if err := n.standing(); err != nil {
		t.Fatalf("standing before the stall: %v", err)
	}
	n.startResync(10 * time.Second)
	if err := n.standing(); !errors.Is(err, ErrResyncing) {
		t.Fatalf("standing during the re-verification: %v, want ErrResyncing", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.ready(ctx); err != nil {
		t.Fatalf("never re-verified: %v", err)
	}
	if n.Stats().Stalls != 1 {
		t.Fatalf("stalls %d, want 1", n.Stats().Stalls)
	}
}

// TestStallDetected: a maintenance loop that has not run for stallAfter
// means the process was frozen.
func TestStallDetected(t *testing.T) {
	var s standing
	s.init()
	s.stallAfter = time.Second
	s.lastBeat.Store(int64(time.Since(s.start)))
	if _, stalled := s.stalled(); stalled {
		t.Fatal("a fresh beat counts as a stall")
	}
	s.lastBeat.Store(int64(time.Since(s.start) - 5*time.Second))
	if d, stalled := s.stalled(); !stalled || d < 5*time.Second {
		t.Fatalf("5 s without a beat: stalled=%v after %v", stalled, d)
	}
}

// TestReadinessIsEarned: a node with seeds is not in standing until it has
// joined and linked with every member (finding 2); one whose seeds never
// answer serves after JoinTimeout.
func TestReadinessIsEarned(t *testing.T) {
	a := startNode(t, testConfig("n0"))
	if err := a.standing(); err != nil {
		t.Fatalf("a node without seeds: %v", err)
	}
	cfg := testConfig("n1")
	cfg.Join = []string{a.gossipAddr()}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, c) })
	b := &node{Cluster: c, rec: &recorder{}}
	if _, err := c.Attach(b.rec, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.ready(ctx); err != nil {
		t.Fatal(err)
	}
	if !fullyLinked(b, 2) {
		t.Fatalf("ready before linked: %+v", b.Stats().Links)
	}

	lonely := testConfig("n2")
	lonely.Join = []string{"127.0.0.1:1"} // nothing listens there
	lonely.JoinTimeout = 500 * time.Millisecond
	l := startNode(t, lonely)
	if err := l.standing(); !errors.Is(err, ErrJoining) {
		t.Fatalf("standing while its seed is down: %v, want ErrJoining", err)
	}
	if err := l.ready(ctx); err != nil {
		t.Fatalf("not serving after the join timeout: %v", err)
	}
}

// TestRestartUnderSameNameLinksAtOnce: a node restarted under the same name
// and ports before its peers declared it dead is linked at once (finding 3:
// the old link's retry backoff is cut short by the new epoch), so a
// subscribe on it is confirmed well within the interest timeout.
func TestRestartUnderSameNameLinksAtOnce(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	pa := a.peer("n1")
	cfg := restartConfig(b)
	cfg.Join = []string{a.gossipAddr()}
	b.kill()
	// Let a's dialer fail a few times, so its backoff has grown.
	waitFor(t, 10*time.Second, "a few failed redials", func() bool { return pa.reconnects.Load() >= 4 })

	cfg.InterestTimeout = 10 * time.Second
	back := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := back.ready(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	subscribe(t, back, "r")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("subscribe on the restarted node confirmed after %v", d)
	}
	a.publish("r", []byte("hi"), "", nil, nil)
	t.Cleanup(func() {
		if t.Failed() {
			l, _ := linkTo(a.Cluster, "n1")
			t.Logf("the restarted node saw %v; a's link to it: %+v", back.rec.eventList(), l)
		}
	})
	waitFor(t, 10*time.Second, "delivery, or a gap", func() bool { return len(back.rec.on("r")) == 1 || back.rec.gapsOn("r") > 0 })
	if len(back.rec.on("r")) == 0 {
		// A link between the two broken meanwhile drops the publish with
		// a gap (guarantee 6). It happened once when a closed its new
		// link on gossip's restart notice, which the welcome's epoch now
		// prevents (TestRestartNoticeKeepsALinkToTheNewProcess); what is
		// checked here is that nothing is lost silently.
		t.Logf("link replaced after the restart: %v", back.rec.eventList())
		a.publish("r", []byte("again"), "", nil, nil)
		waitFor(t, 10*time.Second, "delivery after the gap", func() bool { return len(back.rec.on("r")) == 1 })
	}
}

// TestIsolation: a node is isolated when fewer members are reachable (it
// included) than failed members it cannot reach; a failed member whose
// host refuses the probe is gone, not partitioned away.
func TestIsolation(t *testing.T) {
	for _, tc := range []struct {
		alive, unreachable, refused int
		isolated                    bool
	}{
		{0, 0, 0, false}, // alone by design
		{2, 0, 0, false},
		{1, 1, 0, false}, // 3 nodes, one failed
		{0, 2, 0, true},  // the minority side of a 3-node partition
		{0, 1, 0, false}, // 2 nodes: a tie serves
		{0, 0, 2, false}, // both others crashed on live hosts
		{1, 3, 0, true},
	} {
		c := &Cluster{members: map[string]*member{}, cfg: Config{ReconnectTimeout: time.Hour}, log: slog.New(slog.DiscardHandler)}
		c.stand.init()
		add := func(n int, st memberState, refused bool) {
			for range n {
				name := fmt.Sprint(len(c.members))
				c.members[name] = &member{name: name, state: st, since: time.Now(), refused: refused}
			}
		}
		add(tc.alive, stateAlive, false)
		add(tc.unreachable, stateDead, false)
		add(tc.refused, stateDead, true)
		c.recountLocked(time.Now())
		if got := c.stand.isolated.Load() != nil; got != tc.isolated {
			t.Errorf("%+v: isolated=%v", tc, got)
		}
	}
}

// TestIncidentRules: when a peer's absence costs its subscribers a gap.
func TestIncidentRules(t *testing.T) {
	now := time.Now()
	var i incident
	if i.synced(1, true) {
		t.Error("first sync with a fresh peer")
	}
	i.linkDown(now, true)
	if i.overdue(now.Add(time.Minute)) || i.synced(1, false) {
		t.Error("a link that ended with a bye lost nothing")
	}
	i.linkDown(now, false)
	if !i.synced(1, false) {
		t.Error("a link that broke must end in a gap")
	}
	if !i.synced(2, false) {
		t.Error("a restarted peer that published while unlinked")
	}
	if i.synced(3, true) {
		t.Error("a fresh restarted peer cost nothing")
	}
	if !i.died() {
		t.Error("death with the link up: publishes in flight")
	}
	if !i.synced(3, false) {
		t.Error("back from dead, not fresh")
	}
	i.linkDown(now, false)
	if i.overdue(now.Add(gapDelay/2)) || !i.overdue(now.Add(gapDelay)) || i.overdue(now.Add(2*gapDelay)) {
		t.Error("an outage is reported early exactly once")
	}
	if !i.left() {
		t.Error("a link broken before the leave lost its in-flight publishes")
	}
}

// TestSubscribeDuringLinkOutageIsNotHeldUp: a peer whose link broke cannot
// confirm a subscribe until it is back, so it does not hold the ack up;
// when it confirms, the channel gets a gap (publishes made there meanwhile
// did not reach us).
func TestSubscribeDuringLinkOutageIsNotHeldUp(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	pb := b.peer("n0")
	good := pb.getAddr()
	pb.update("127.0.0.1:1", false, 0) // b's link to a (which carries b's interest) stays down
	waitFor(t, 5*time.Second, "the link down and retried", func() bool {
		return pb.out.Load() == nil && pb.reconnects.Load() > 0
	})
	tk := b.subscribe("z")
	if !b.confirmedOrLate(tk, "z") {
		t.Fatal("a subscribe waits for a peer whose link is down")
	}
	pb.update(good, false, 0)
	waitFor(t, 10*time.Second, "the late peer's gap", func() bool { return b.rec.gapsOn("z") == 1 })
	a.publish("z", []byte("now"), "", nil, nil)
	waitFor(t, 5*time.Second, "delivery once linked", func() bool { return len(b.rec.on("z")) == 1 })
}

// TestDropTotalsOutliveThePeer: the node-wide drop counts (metrics'
// meshcast_drops_total) keep a peer's drops after the peer is gone, so the
// counter never goes down.
func TestDropTotalsOutliveThePeer(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	subscribe(t, a, "x")
	pb := b.peer("n0")
	pb.update("127.0.0.1:1", false, 0) // b's link to a stays down
	waitFor(t, 5*time.Second, "b's link to a down", func() bool {
		l, _ := linkTo(b.Cluster, "n0")
		return l.State != "up"
	})
	b.publish("x", []byte("lost"), "", nil, nil)
	if st := b.Stats(); st.PeerDropsLinkDown != 1 {
		t.Fatalf("b counted %d drops for a down link, want 1", st.PeerDropsLinkDown)
	}
	shutdown(t, a.Cluster) // leaves: b forgets the peer and its counters
	waitFor(t, 10*time.Second, "b forgets a", func() bool {
		_, ok := linkTo(b.Cluster, "n0")
		return !ok
	})
	if st := b.Stats(); st.PeerDropsLinkDown != 1 {
		t.Fatalf("after a left, b's node-wide drops are %d, want still 1", st.PeerDropsLinkDown)
	}
}

// TestJoinDoesNotWaitForACrashedMember: a node joining while a member's
// process is gone but memberlist still lists it alive (the seconds before
// it is declared dead) is ready once its dials to that member's peer and
// gossip ports are refused, instead of refusing clients until the member
// is declared dead. Probes are 30 s apart here, so that nobody notices the
// death during the test.
func TestJoinDoesNotWaitForACrashedMember(t *testing.T) {
	slowProbes := func(c *Config) {
		c.Memberlist = func(mc *memberlist.Config) {
			testGossip(mc)
			mc.ProbeInterval = 30 * time.Second
		}
	}
	nodes := startClusterWith(t, 3, slowProbes)
	nodes[1].kill()
	cfg := testConfig("n3")
	cfg.Join = []string{nodes[0].gossipAddr()}
	cfg.JoinTimeout = time.Minute // the old behaviour: not ready for a minute
	slowProbes(&cfg)
	joiner := startNode(t, cfg)
	waitFor(t, 20*time.Second, "the joiner ready", func() bool { return joiner.standing() == nil })
	if st := stateOf(joiner.Cluster, "n1"); st != "alive" {
		// A probe of n1 came within the moment between the kill and the
		// join (about 1 in 60): n0 suspected it and never told the joiner.
		t.Skipf("the joiner sees n1 %q: the test needs it listed alive", st)
	}
	// It serves: a publish on the joiner reaches a subscriber on n2.
	subscribe(t, nodes[2], "x")
	waitFor(t, 10*time.Second, "the joiner learns n2's interest", func() bool {
		return len(joiner.table.lookup("x")) == 1
	})
	joiner.publish("x", []byte("hi"), "", nil, nil)
	waitFor(t, 5*time.Second, "delivery from the joiner", func() bool { return len(nodes[2].rec.on("x")) == 1 })
}

// TestJoinWaitsForALivePeerThatRefusesLinks: a member whose peer port
// refuses connections but whose gossip port answers is alive (a firewall
// rejecting the peer port, a listener on another interface): a joining
// node does not become ready without it, since its subscribers would miss
// what the joiner's clients publish.
func TestJoinWaitsForALivePeerThatRefusesLinks(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[1].peerLn.Close() // "n1: peer listener failed" logged: expected
	cfg := testConfig("n3")
	cfg.Join = []string{nodes[0].gossipAddr()}
	cfg.JoinTimeout = time.Minute
	joiner := startNode(t, cfg)
	waitFor(t, 20*time.Second, "the joiner's dial to n1 refused", func() bool {
		l, ok := linkTo(joiner.Cluster, "n1")
		return ok && l.Reconnects >= 2
	})
	if err := joiner.standing(); !errors.Is(err, ErrJoining) {
		t.Fatalf("joiner standing %v with n1 alive and unlinked, want joining", err)
	}
}

// TestShutdownAgainWaitsForWhatWasLeft: a Shutdown whose ctx ended before
// every goroutine stopped can be called again to wait for them; the second
// call returned the first's stale error at once.
func TestShutdownAgainWaitsForWhatWasLeft(t *testing.T) {
	for try := 0; try < 20; try++ {
		c, err := New(testConfig("n0"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Attach(&recorder{}, nil); err != nil {
			t.Fatal(err)
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Shutdown(cancelled); err == nil {
			continue // everything had stopped already: try again
		}
		ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		err = c.Shutdown(ctx)
		cancel2()
		if err != nil {
			t.Fatalf("second Shutdown: %v, want nil once every goroutine stopped", err)
		}
		return
	}
	t.Fatal("20 Shutdowns with a cancelled ctx all found everything stopped: nothing tested")
}

// TestIsolationIsLogged: the node cut off from the others says at warn
// that it is isolated and refuses clients, once, and at info when it
// serves again; the majority side logs neither.
func TestIsolationIsLogged(t *testing.T) {
	logs := []*logCapture{{}, {}, {}}
	pt := startPartitionable(t, func(i int, cfg *Config) { cfg.Logger = slog.New(logs[i]) })
	c := pt.nodes[2]
	pt.cut(t)
	waitFor(t, 20*time.Second, "the cut-off node isolated", func() bool { return c.standing() != nil })
	var warned []string
	waitFor(t, 5*time.Second, "the isolation logged", func() bool {
		warned = logs[2].matching(slog.LevelWarn, "isolated")
		return len(warned) > 0
	})
	if len(warned) != 1 || !strings.Contains(warned[0], "refusing new connections, subscribes and publishes") {
		t.Fatalf("warnings about isolation: %q", warned)
	}
	if why := logs[2].attr(slog.LevelWarn, "isolated", "why"); !strings.Contains(why, "cannot reach n0, n1") {
		t.Fatalf("why=%q: want the members it cannot reach", why)
	}
	pt.heal(t)
	waitFor(t, 20*time.Second, "the node serving again", func() bool { return c.standing() == nil })
	waitFor(t, 5*time.Second, "the end of the isolation logged", func() bool {
		return len(logs[2].matching(slog.LevelInfo, "no longer isolated")) == 1
	})
	// One line per member reached again, naming it: its seed address,
	// tried too, is not a second line with an empty peer.
	waitFor(t, 5*time.Second, "a member reached again", func() bool {
		return len(logs[0].matching(slog.LevelInfo, "reached a"))+len(logs[1].matching(slog.LevelInfo, "reached a"))+
			len(logs[2].matching(slog.LevelInfo, "reached a")) > 0
	})
	for _, r := range slices.Concat(logs[0].all(), logs[1].all(), logs[2].all()) {
		if r.Level >= slog.LevelInfo && strings.HasPrefix(r.Message, "reached a") && !strings.Contains(r.Message, "not a member") {
			peer := ""
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "peer" {
					peer = a.Value.String()
				}
				return true
			})
			if peer == "" {
				t.Fatalf("%q without the peer's name", r.Message)
			}
		}
	}
	// The majority side may count a member dead for a moment at the heal
	// (the cut-off node gossips what it saw): that is no partition.
	for i := range 2 {
		if got := logs[i].matching(slog.LevelWarn, "isolated"); len(got) > 0 {
			t.Fatalf("n%d on the majority side logged %q", i, got)
		}
	}
}

// syncBuffer is a bytes.Buffer for a log handler and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// TestRestartedNodeLogsNoWarning: a node restarted under its name after
// a crash refutes the others' news of its death; that is its job, logged
// at info, not warn (an operator alerting on warnings was paged by every
// rolling restart). memberlist's lines carry one "component" key (the
// logger's), so JSON logs stay unambiguous.
func TestRestartedNodeLogsNoWarning(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	cfg := restartConfig(b)
	cfg.Join = []string{a.gossipAddr()}
	b.kill()
	waitFor(t, 10*time.Second, "a declares b dead", func() bool { return stateOf(a.Cluster, "n1") == "dead" })
	var out syncBuffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("component", "cluster") // as cmd/meshcast gives it
	back := startNode(t, cfg)
	waitFor(t, 10*time.Second, "the restarted node linked", func() bool { return fullyLinked(back, 2) })
	var refuted bool
	for _, l := range out.lines() {
		if strings.Count(l, `"component":`) != 1 {
			t.Errorf("not one component key: %s", l)
		}
		var rec struct{ Level, Msg, Subsystem string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if strings.HasPrefix(rec.Msg, "Refuting a ") {
			refuted = true
			if rec.Level != "INFO" || rec.Subsystem != "memberlist" {
				t.Errorf("want INFO, subsystem memberlist: %s", l)
			}
		}
	}
	if !refuted {
		t.Fatalf("no refutation logged (the test no longer covers it):\n%s", strings.Join(out.lines(), "\n"))
	}
}

// TestLinkOutageIsLoggedOnce: a link that stays down is redialled with
// backoff, several times a second at first; the outage is logged at info
// once when it starts and once when the link is up again, not at every
// dial (a killed peer wrote eight lines in its first five seconds on each
// survivor).
func TestLinkOutageIsLoggedOnce(t *testing.T) {
	logs := &logCapture{}
	nodes := startClusterWith(t, 2, func(cfg *Config) {
		if cfg.NodeName == "n1" {
			cfg.Logger = slog.New(logs)
		}
	})
	b := nodes[1]
	pb := b.peer("n0")
	good := pb.getAddr()
	pb.update("127.0.0.1:1", false, 0) // b's dials to a fail; gossip goes on
	waitFor(t, 10*time.Second, "several failed dials", func() bool { return pb.reconnects.Load() >= 5 })
	if got := logs.matching(slog.LevelInfo, "peer link down"); len(got) != 1 {
		t.Fatalf("%d lines at info for one outage: %q", len(got), got)
	}
	if got := len(logs.matching(slog.LevelDebug, "peer link down")); got < 3 {
		t.Fatalf("%d failed dials at debug", got)
	}
	pb.update(good, false, 0)
	waitFor(t, 10*time.Second, "the link up again, logged", func() bool {
		return len(logs.matching(slog.LevelInfo, "peer link up again")) == 1
	})
	if n := logs.attr(slog.LevelInfo, "peer link up again", "failures"); n == "" || n == "0" || n == "1" {
		t.Fatalf("failures=%q: want the outage's count", n)
	}
}

// TestRejoinSaysHowLongItWasGone: a member that comes back is logged with
// the state it was declared in and the time since; the line said
// "was_unreachable_for" of the time since the declaration, a few seconds
// less than the outage (failure detection), which misled.
func TestRejoinSaysHowLongItWasGone(t *testing.T) {
	logs := &logCapture{}
	nodes := startClusterWith(t, 2, func(cfg *Config) {
		if cfg.NodeName == "n0" {
			cfg.Logger = slog.New(logs)
		}
	})
	a, b := nodes[0], nodes[1]
	cfg := restartConfig(b)
	cfg.Join = []string{a.gossipAddr()}
	b.kill()
	waitFor(t, 10*time.Second, "a declares b dead", func() bool { return stateOf(a.Cluster, "n1") == "dead" })
	back := startNode(t, cfg)
	waitFor(t, 10*time.Second, "the restarted node linked", func() bool { return fullyLinked(back, 2) })
	if was := logs.attr(slog.LevelInfo, "node restarted and rejoined", "was"); was != "dead" {
		t.Fatalf("was=%q, want dead", was)
	}
	if d := logs.attr(slog.LevelInfo, "node restarted and rejoined", "gone_since_declared"); d == "" {
		t.Fatal("no gone_since_declared")
	}
}

// TestBriefIsolationIsNoWarning: members counted dead and back within
// isolationWarnAfter (a partition healing, seen from the majority side,
// whose members the cut-off node gossips as dead) is logged at info when
// it ends; an isolation that lasts is logged at warn once, when it has
// lasted isolationWarnAfter. Found on a 3-node netns cluster: the healthy
// side logged "isolated" at warn for 3 ms at every heal.
func TestBriefIsolationIsNoWarning(t *testing.T) {
	logs := &logCapture{}
	c := &Cluster{members: map[string]*member{}, cfg: Config{ReconnectTimeout: time.Hour}, log: slog.New(logs)}
	c.stand.init()
	t0 := time.Now()
	set := func(st memberState) {
		for _, name := range []string{"a", "b"} {
			c.members[name] = &member{name: name, state: st, since: t0}
		}
	}
	set(stateDead)
	c.recountLocked(t0)
	set(stateAlive)
	c.recountLocked(t0.Add(3 * time.Millisecond))
	if got := logs.since(0, slog.LevelInfo); len(got) != 1 || !strings.HasPrefix(got[0], "INFO was isolated briefly") {
		t.Fatalf("a 3 ms isolation logged %q", got)
	}

	mark := logs.len()
	set(stateDead)
	for _, d := range []time.Duration{0, isolationWarnAfter / 2, isolationWarnAfter, isolationWarnAfter + beatEvery} {
		c.recountLocked(t0.Add(d))
	}
	set(stateAlive)
	c.recountLocked(t0.Add(2 * isolationWarnAfter))
	got := logs.since(mark, slog.LevelInfo)
	if len(got) != 2 || !strings.HasPrefix(got[0], "WARN isolated: ") || !strings.HasPrefix(got[1], "INFO no longer isolated") {
		t.Fatalf("a lasting isolation logged %q", got)
	}
}

// TestReadyIsLogged: a joining node says when it serves (linked with
// every member), not only that it joined: between the two it refuses
// clients, and its log said nothing of the moment it stopped.
func TestReadyIsLogged(t *testing.T) {
	logs := &logCapture{}
	startClusterWith(t, 2, func(cfg *Config) {
		if cfg.NodeName == "n1" {
			cfg.Logger = slog.New(logs)
		}
	})
	waitFor(t, 5*time.Second, "the serving line", func() bool {
		return logs.attr(slog.LevelInfo, "joined the cluster and linked with every member: ready", "members") == "2"
	})
}
