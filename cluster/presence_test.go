package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/internal/relay"
)

// presenceModel is a node's view of presence as a hub would keep it from
// what the cluster hands over: entries per owner, users present per
// channel counted over every owner, and the join and leave events that
// view makes. The test adds a node's own entries under owner 0.
type presenceModel struct {
	mu     sync.Mutex
	owners map[uint64]map[presenceKey]string // owner seq -> entry -> user
	events []presenceNote
}

// presenceNote is a join or leave of "ch user", when the view made it.
type presenceNote struct {
	what string // "join ch user" / "leave ch user"
	at   time.Time
}

type presenceKey struct{ ch, client string }

func (r *countingReceiver) PresenceSync(relay.Owner, bool, []relay.PresenceChannel)     {}
func (r *countingReceiver) PresenceChange(relay.Owner, relay.PresenceEntry, bool, bool) {}
func (r *countingReceiver) PresenceDrop(relay.Owner)                                    {}
func (r *countingReceiver) PresenceForget(string)                                       {}

func (r *recorder) PresenceSync(o relay.Owner, full bool, chans []relay.PresenceChannel) {
	r.pres.apply(o.Seq, func(set map[presenceKey]string) {
		synced := map[string]bool{}
		for _, pc := range chans {
			synced[pc.Ch] = true
		}
		for k := range set {
			if full || synced[k.ch] {
				delete(set, k)
			}
		}
		for _, pc := range chans {
			for _, e := range pc.Entries {
				set[presenceKey{e.Ch, e.Client}] = e.User
			}
		}
	})
}

func (r *recorder) PresenceForget(ch string) {
	r.pres.forget(ch)
}

func (r *recorder) PresenceChange(o relay.Owner, e relay.PresenceEntry, present, _ bool) {
	r.pres.apply(o.Seq, func(set map[presenceKey]string) {
		if present {
			set[presenceKey{e.Ch, e.Client}] = e.User
		} else {
			delete(set, presenceKey{e.Ch, e.Client})
		}
	})
}

func (r *recorder) PresenceDrop(o relay.Owner) {
	r.pres.apply(o.Seq, func(set map[presenceKey]string) { clear(set) })
}

// apply changes owner's entries with fn and notes the joins and leaves.
func (m *presenceModel) apply(owner uint64, fn func(map[presenceKey]string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before := m.usersLocked()
	if m.owners == nil {
		m.owners = make(map[uint64]map[presenceKey]string)
	}
	set := m.owners[owner]
	if set == nil {
		set = make(map[presenceKey]string)
		m.owners[owner] = set
	}
	fn(set)
	if len(set) == 0 {
		delete(m.owners, owner)
	}
	after := m.usersLocked()
	now := time.Now()
	for _, k := range sortedSet(before) {
		if !after[k] {
			m.events = append(m.events, presenceNote{"leave " + k, now})
		}
	}
	for _, k := range sortedSet(after) {
		if !before[k] {
			m.events = append(m.events, presenceNote{"join " + k, now})
		}
	}
}

// forget removes every remote owner's entries of ch.
func (m *presenceModel) forget(ch string) {
	for owner := range m.ownersCopy() {
		if owner == 0 {
			continue
		}
		m.apply(owner, func(set map[presenceKey]string) {
			for k := range set {
				if k.ch == ch {
					delete(set, k)
				}
			}
		})
	}
}

func (m *presenceModel) ownersCopy() map[uint64]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64]bool{}
	for o := range m.owners {
		out[o] = true
	}
	return out
}

func (m *presenceModel) usersLocked() map[string]bool {
	users := map[string]bool{}
	for _, set := range m.owners {
		for k, u := range set {
			users[k.ch+" "+u] = true
		}
	}
	return users
}

func sortedSet(s map[string]bool) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// view lists the users present, "ch user", sorted.
func (m *presenceModel) view() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(sortedSet(m.usersLocked()), ",")
}

// log lists the events since mark (an index from mark()).
func (m *presenceModel) log(since int) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, n := range m.events[since:] {
		out = append(out, n.what)
	}
	return out
}

func (m *presenceModel) mark() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// when is the time of the first event what after since, or zero.
func (m *presenceModel) when(since int, what string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.events[since:] {
		if n.what == what {
			return n.at
		}
	}
	return time.Time{}
}

// alternates checks that each "ch user" joins and leaves in turn: never
// two joins (or two leaves) in a row, no leave first.
func (m *presenceModel) alternates() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := map[string]bool{}
	for _, n := range m.events {
		what, key, _ := strings.Cut(n.what, " ")
		if (what == "join") == in[key] {
			return fmt.Errorf("%s twice in a row", n.what)
		}
		in[key] = what == "join"
	}
	return nil
}

// present adds a local entry on n, as the hub does for a subscriber.
func present(n *node, ch, client, user string) {
	e := relay.PresenceEntry{Ch: ch, Client: client, User: user}
	n.rec.pres.apply(0, func(set map[presenceKey]string) { set[presenceKey{ch, client}] = user })
	n.presenceAdd(e)
}

func absent(n *node, ch, client string) {
	n.rec.pres.apply(0, func(set map[presenceKey]string) { delete(set, presenceKey{ch, client}) })
	n.presenceRemove(ch, client)
}

// wantPresence makes n want the presence channels chs, as a hub with a
// subscriber of each does, and waits until every peer confirmed it and
// sent its entries.
func wantPresence(t testing.TB, n *node, chs ...string) {
	t.Helper()
	for _, ch := range chs {
		await(t, n, ch, n.subscribeAs(ch, true))
	}
}

// sameView waits until every node's view is want.
func sameView(t testing.TB, nodes []*node, want string, within time.Duration) {
	t.Helper()
	waitFor(t, within, "every node to see "+want, func() bool {
		for _, n := range nodes {
			if n.rec.pres.view() != want {
				return false
			}
		}
		return true
	})
}

func checkAlternates(t testing.TB, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		if err := n.rec.pres.alternates(); err != nil {
			t.Errorf("%s: %v (events %v)", n.Name(), err, n.rec.pres.log(0))
		}
	}
}

// TestPresenceReplicates: entries reach every node, a user's tabs on two
// nodes are one user, and a node that joins later gets the whole set.
func TestPresenceReplicates(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	wantPresence(t, a, "room", "lobby")
	wantPresence(t, b, "room", "lobby")
	present(a, "room", "a1", "alice")
	present(b, "room", "b1", "alice")
	present(b, "room", "b2", "bob")
	present(b, "lobby", "b2", "bob")
	sameView(t, nodes, "lobby bob,room alice,room bob", 5*time.Second)

	cfg := testConfig("n2")
	cfg.Join = []string{a.gossipAddr()}
	c := startNode(t, cfg)
	all := append(nodes, c)
	waitFor(t, 10*time.Second, "the late node linked", func() bool { return fullyLinked(c, 3) })
	wantPresence(t, c, "room", "lobby")
	if v := c.rec.pres.view(); v != "lobby bob,room alice,room bob" {
		t.Fatalf("the late node's view once its wants are confirmed: %s", v)
	}
	sameView(t, all, "lobby bob,room alice,room bob", 10*time.Second)
	absent(a, "room", "a1") // alice is still on b
	absent(b, "lobby", "b2")
	sameView(t, all, "room alice,room bob", 5*time.Second)
	absent(b, "room", "b1")
	sameView(t, all, "room bob", 5*time.Second)
	got := c.rec.pres.log(0)
	slices.Sort(got[:3]) // a's and b's snapshots race
	if want := []string{"join lobby bob", "join room alice", "join room bob", "leave lobby bob", "leave room alice"}; !slices.Equal(got, want) {
		t.Fatalf("the late node saw %v, want %v", got, want)
	}
	checkAlternates(t, all...)
	if st := b.Stats().Presence; st.LocalEntries != 1 || st.FramesSent == 0 || st.Syncs == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPresenceKilledNodeLeaves: a node that dies takes its users with it,
// within the failure detection and a second; users it shared with a
// survivor stay.
func TestPresenceKilledNodeLeaves(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, victim := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		wantPresence(t, n, "room")
	}
	present(a, "room", "a1", "alice")
	present(victim, "room", "v1", "alice")
	present(victim, "room", "v2", "vic")
	sameView(t, nodes, "room alice,room vic", 5*time.Second)
	marks := []int{a.rec.pres.mark(), b.rec.pres.mark()}

	victim.kill()
	for i, n := range nodes[:2] {
		var dead time.Time
		waitFor(t, 15*time.Second, n.Name()+" declares the victim dead", func() bool {
			if dead.IsZero() && stateOf(n.Cluster, "n2") == "dead" {
				dead = time.Now()
			}
			return !dead.IsZero() && n.rec.pres.view() == "room alice"
		})
		left := n.rec.pres.when(marks[i], "leave room vic")
		if got := n.rec.pres.log(marks[i]); !slices.Equal(got, []string{"leave room vic"}) {
			t.Fatalf("%s: events %v, want only vic's leave", n.Name(), got)
		}
		if lag := left.Sub(dead); lag > time.Second {
			t.Fatalf("%s: vic left %v after the victim was declared dead", n.Name(), lag)
		}
		t.Logf("%s: vic's leave %v after the death was seen", n.Name(), left.Sub(dead).Round(time.Millisecond))
	}
	checkAlternates(t, a, b)
}

// TestPresenceGracefulLeave: a node that shuts down takes its users with
// it at once (its bye), not after failure detection.
func TestPresenceGracefulLeave(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, leaver := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		wantPresence(t, n, "room")
	}
	present(leaver, "room", "l1", "lee")
	present(leaver, "room", "l2", "bob")
	present(b, "room", "b1", "bob")
	sameView(t, nodes, "room bob,room lee", 5*time.Second)
	start := time.Now()
	shutdown(t, leaver.Cluster)
	sameView(t, nodes[:2], "room bob", 2*time.Second)
	t.Logf("lee's leave %v after the shutdown began", time.Since(start).Round(time.Millisecond))
	for _, n := range []*node{a, b} {
		if st := stateOf(n.Cluster, "n2"); st != "left" && st != "" && st != "alive" {
			t.Fatalf("%s: the leaver is %q", n.Name(), st)
		}
	}
	checkAlternates(t, a, b)
}

// TestPresenceRestartReplaces: a node restarted under the same name, on
// the same ports, before the others notice it died: its snapshot replaces
// what the dead process had.
func TestPresenceRestartReplaces(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	wantPresence(t, a, "room")
	present(b, "room", "old1", "alice")
	present(b, "room", "old2", "bob")
	present(a, "room", "a1", "bob")
	sameView(t, nodes, "room alice,room bob", 5*time.Second)
	mark := a.rec.pres.mark()
	b.kill()
	cfg := restartConfig(b)
	cfg.Join = []string{a.gossipAddr()}
	back := startNode(t, cfg)
	present(back, "room", "new1", "carol")
	sameView(t, []*node{a}, "room bob,room carol", 15*time.Second)
	got := a.rec.pres.log(mark)
	slices.Sort(got)
	if want := []string{"join room carol", "leave room alice"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	checkAlternates(t, a)
}

// TestPresenceLinkResetResyncs: changes made while a link is down reach
// the peer with the next link's snapshot, as net changes only.
func TestPresenceLinkResetResyncs(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	wantPresence(t, a, "room")
	present(b, "room", "b1", "alice")
	present(b, "room", "b2", "bob")
	sameView(t, nodes, "room alice,room bob", 5*time.Second)
	mark := a.rec.pres.mark()

	pb := b.peer("n0")
	good := pb.getAddr()
	pb.update("127.0.0.1:1", false, 0) // b's link to a stays down
	waitFor(t, 5*time.Second, "a sees the link from b gone", func() bool {
		l, _ := linkTo(a.Cluster, "n1")
		return !l.InboundUp
	})
	absent(b, "room", "b1")
	present(b, "room", "b3", "carol")
	present(b, "room", "b4", "bob") // a second tab: no event
	absent(b, "room", "b2")
	if v := a.rec.pres.view(); v != "room alice,room bob" {
		t.Fatalf("a's view changed while the link was down: %s", v)
	}
	pb.update(good, false, 0)
	sameView(t, nodes, "room bob,room carol", 10*time.Second)
	got := a.rec.pres.log(mark)
	slices.Sort(got)
	if want := []string{"join room carol", "leave room alice"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// partitionable is a 3-node cluster whose last node can be cut off from
// the others' gossip and healed: it swaps its gossip key for one they do
// not have, so nothing either side sends can be read by the other
// (gossip is encrypted, and screened before memberlist). Peer links
// follow membership: each side drops the links of members it declares
// dead, and refuses links from them until they are members again.
type partitionable struct {
	nodes []*node
	ring  *memberlist.Keyring // the last node's
	key   []byte
}

func startPartitionable(t *testing.T, adjust ...func(i int, cfg *Config)) *partitionable {
	t.Helper()
	pt := &partitionable{}
	var nodes []*node
	for i := range 3 {
		cfg := testConfig(fmt.Sprintf("n%d", i))
		for _, f := range adjust {
			f(i, &cfg)
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].gossipAddr()}
		}
		if i == 2 {
			cfg.Memberlist = func(mc *memberlist.Config) {
				testGossip(mc)
				pt.ring = mc.Keyring
			}
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	waitFor(t, 20*time.Second, "cluster to form", func() bool {
		for _, nd := range nodes {
			if !fullyLinked(nd, 3) {
				return false
			}
		}
		return true
	})
	pt.nodes, pt.key = nodes, pt.ring.GetPrimaryKey()
	return pt
}

func (pt *partitionable) swapKey(t testing.TB, from, to []byte) {
	t.Helper()
	if err := pt.ring.AddKey(to); err != nil {
		t.Fatal(err)
	}
	if err := pt.ring.UseKey(to); err != nil {
		t.Fatal(err)
	}
	if err := pt.ring.RemoveKey(from); err != nil {
		t.Fatal(err)
	}
}

func (pt *partitionable) cut(t testing.TB) {
	pt.swapKey(t, pt.key, bytes.Repeat([]byte{7}, len(pt.key)))
}

func (pt *partitionable) heal(t testing.TB) {
	pt.swapKey(t, bytes.Repeat([]byte{7}, len(pt.key)), pt.key)
}

// TestPresencePartitionHeals: each side of a partition sees the users of
// the other leave; after the heal every node has one view again within
// 5 s, with no zombie (a user of a node that is gone) and no duplicate
// join, and users with tabs on both sides never left.
func TestPresencePartitionHeals(t *testing.T) {
	pt := startPartitionable(t)
	a, b, c := pt.nodes[0], pt.nodes[1], pt.nodes[2]
	for _, n := range pt.nodes {
		wantPresence(t, n, "room")
	}
	present(a, "room", "a1", "ann")
	present(a, "room", "a2", "both")
	present(b, "room", "b1", "ben")
	present(c, "room", "c1", "cat")
	present(c, "room", "c2", "both")
	full := "room ann,room ben,room both,room cat"
	sameView(t, pt.nodes, full, 5*time.Second)

	pt.cut(t)
	waitFor(t, 20*time.Second, "each side drops the other", func() bool {
		return a.rec.pres.view() == "room ann,room ben,room both" &&
			b.rec.pres.view() == "room ann,room ben,room both" &&
			c.rec.pres.view() == "room both,room cat"
	})
	// Changes on both sides during the partition.
	present(c, "room", "c3", "dan")
	absent(c, "room", "c1")
	absent(a, "room", "a1")
	present(b, "room", "b2", "eve")
	waitFor(t, 5*time.Second, "changes within each side", func() bool {
		return a.rec.pres.view() == "room ben,room both,room eve" && c.rec.pres.view() == "room both,room dan"
	})

	healed := time.Now()
	pt.heal(t)
	want := "room ben,room both,room dan,room eve"
	sameView(t, pt.nodes, want, 20*time.Second)
	took := time.Since(healed)
	t.Logf("one view %v after the heal", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("one view only %v after the heal", took)
	}
	checkAlternates(t, pt.nodes...)
	for _, n := range pt.nodes {
		for _, e := range n.rec.pres.log(0) {
			if strings.HasSuffix(e, " both") && e != "join room both" {
				t.Fatalf("%s: %q: a user with a tab on each side left", n.Name(), e)
			}
		}
	}
}

// TestPresenceSetFramesRoundTrip: a set chunked to fit small frames
// reads back as the same channels and entries, in order, with Done only
// on the last chunk and a big channel split across chunks.
func TestPresenceSetFramesRoundTrip(t *testing.T) {
	var secs []presenceSection
	for c := range 5 {
		sec := presenceSection{Ch: fmt.Sprintf("room:%d", c), Seq: uint64(10 + c)}
		for i := range 60 * c {
			sec.Entries = append(sec.Entries, presenceItem{Client: fmt.Sprintf("c%d", i),
				User: strings.Repeat("u", i%40), Info: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		secs = append(secs, sec)
	}
	for _, tc := range []struct {
		secs []presenceSection
		min  int
	}{{nil, 1}, {secs[:1], 1}, {secs, 4}} {
		frames, err := presenceChansFrames(tc.secs, true, minFrameSize)
		if err != nil || len(frames) < tc.min {
			t.Fatalf("%d channels: %d frames, %v", len(tc.secs), len(frames), err)
		}
		in := &inConn{}
		var got []presenceSection
		for i, f := range frames {
			if len(f)-headerLen > minFrameSize || frameType(f[headerLen]) != framePresenceChans {
				t.Fatalf("frame %d: %d bytes, type %d", i, len(f), f[headerLen])
			}
			var m presenceChansMsg
			if err := decodeMsg(f[headerLen+1:], &m); err != nil {
				t.Fatal(err)
			}
			if m.Done != (i == len(frames)-1) || !m.Full {
				t.Fatalf("frame %d of %d: done %v full %v", i, len(frames), m.Done, m.Full)
			}
			// as presenceChunk collects them
			for _, sec := range m.Chans {
				if n := len(in.pres.secs); n > 0 && in.pres.secs[n-1].Ch == sec.Ch {
					in.pres.secs[n-1].Entries = append(in.pres.secs[n-1].Entries, sec.Entries...)
					continue
				}
				in.pres.secs = append(in.pres.secs, sec)
			}
		}
		got = in.pres.secs
		if fmt.Sprint(got) != fmt.Sprint(tc.secs) {
			t.Fatalf("%d channels read back as %d", len(tc.secs), len(got))
		}
	}
}

// FuzzPresenceFrames feeds peer bytes to the presence handler of an
// inbound link: nothing may panic, and a change the handler accepts is
// handed to the hub whole.
func FuzzPresenceFrames(f *testing.F) {
	add, _ := encodeMsg(framePresence, presenceMsg{Ch: "room", Client: "c1", User: "alice", Info: []byte(`{"a":1}`)})
	gone, _ := encodeMsg(framePresence, presenceMsg{Ch: "room", Client: "c1", User: "alice", Gone: true})
	sets, _ := presenceChansFrames([]presenceSection{{Ch: "room", Seq: 1, Entries: []presenceItem{{Client: "c2", User: "bob"}}}}, false, minFrameSize)
	query, _ := encodeMsg(framePresenceQuery, presenceQueryMsg{ID: 1, Ch: "room"})
	all := bytes.Join([][]byte{sets[0], add, gone, query}, nil)
	f.Add(all)
	for i := 0; i < len(all); i += 5 {
		f.Add(all[:i])
	}
	f.Add([]byte{0, 0, 0, 2, byte(framePresence), 0x80})
	f.Add([]byte{0, 0, 0, 3, byte(framePresenceChans), 0x81, 0xa1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := &recorder{}
		c := &Cluster{recv: rec, cfg: Config{MaxFrameSize: minFrameSize}, log: slog.New(slog.DiscardHandler)}
		c.local.chans = map[string]*localChan{"room": {seq: 1, refs: 1, presence: true, settled: true}}
		p := &peer{c: c, name: "peer", owner: 1, ackWait: make(chan struct{}),
			presWants: map[string]uint64{}, presSynced: map[string]uint64{}}
		ic := &inConn{p: p, ackWake: make(chan struct{}, 1)}
		fr := newFrameReader(bufio.NewReaderSize(bytes.NewReader(b), 64), minFrameSize)
		for {
			typ, body, err := fr.next()
			if err != nil {
				break
			}
			if ok, err := ic.handlePresence(typ, body); !ok || err != nil {
				break
			}
		}
		_ = rec.pres.view()
	})
}

// TestPresenceLocalBytesPerEntry reports what a node's own entry costs
// the cluster beside the hub's table (the map a link's snapshot is built
// from; the strings are the hub's, shared).
func TestPresenceLocalBytesPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	c := &Cluster{}
	var entries []relay.PresenceEntry
	for i := range 10000 {
		entries = append(entries, relay.PresenceEntry{Ch: "room:x", Client: fmt.Sprintf("%08x%d", i, i), User: fmt.Sprintf("user-%06d", i)})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, e := range entries {
		c.presenceAdd(e)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if c.pres.count != len(entries) {
		t.Fatalf("%d entries kept", c.pres.count)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(entries))
	t.Logf("%.0f bytes per local entry", per)
	if per > 160 {
		t.Errorf("%.0f bytes per local entry, over the documented 160", per)
	}
	runtime.KeepAlive(entries)
	runtime.KeepAlive(c)
}

// TestPresenceOnlyInterestedPeers: a change goes only to the peers that
// want its channel, one frame each; a node that comes to want it holds
// every peer's entries once its want is confirmed.
func TestPresenceOnlyInterestedPeers(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	wantPresence(t, a, "room")
	wantPresence(t, b, "room")
	sent := func(peer string) uint64 {
		l, _ := linkTo(a.Cluster, peer)
		return l.PresenceSent
	}
	toB, toC := sent("n1"), sent("n2")
	present(a, "room", "a1", "alice")
	present(b, "room", "b1", "bob")
	sameView(t, nodes[:2], "room alice,room bob", 5*time.Second)
	if sent("n1") != toB+1 || sent("n2") != toC {
		t.Fatalf("a sent %d frames to b and %d to c, want 1 and 0", sent("n1")-toB, sent("n2")-toC)
	}
	if v := c.rec.pres.view(); v != "" {
		t.Fatalf("c, which does not want room, holds %q", v)
	}
	wantPresence(t, c, "room")
	if v := c.rec.pres.view(); v != "room alice,room bob" {
		t.Fatalf("c's view once its want is confirmed: %q", v)
	}
	// c no longer wants it: it drops the others' entries, and gets nothing more.
	unsubscribe(t, c, "room")
	if v := c.rec.pres.view(); v != "" {
		t.Fatalf("c's view after its last unsubscribe: %q", v)
	}
	toC = sent("n2")
	present(a, "room", "a2", "ann")
	sameView(t, nodes[:2], "room alice,room ann,room bob", 5*time.Second)
	if sent("n2") != toC || c.rec.pres.view() != "" {
		t.Fatalf("a sent %d frames to c after it stopped wanting room; c holds %q", sent("n2")-toC, c.rec.pres.view())
	}
	checkAlternates(t, nodes...)
}

// TestPresenceFetch: a node that does not want a channel asks every peer
// for its entries. A live peer it cannot reach fails the query, named; a
// peer whose process is gone (its port refuses) is left out, with its
// users, as its death will soon drop them everywhere.
func TestPresenceFetch(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	present(a, "room", "a1", "alice")
	present(b, "room", "b1", "bob")
	present(b, "room", "b2", "alice")
	ctx := context.Background()
	got := func() (string, error) {
		entries, err := c.presenceFetch(ctx, "room")
		var out []string
		for _, e := range entries {
			out = append(out, e.Client+"="+e.User)
		}
		slices.Sort(out)
		return strings.Join(out, ","), err
	}
	if v, err := got(); err != nil || v != "a1=alice,b1=bob,b2=alice" {
		t.Fatalf("fetch: %q %v", v, err)
	}

	// c's link to b stays down, b a member: c dials a port that accepts
	// and never answers (a refused dial would mark b's process gone).
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		defer close(held)
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			held <- conn
		}
	}()
	unblock := func() { // the dialer's handshake ends at once
		silent.Close()
		for conn := range held {
			conn.Close()
		}
	}
	defer func() {
		if silent != nil {
			unblock()
		}
	}()
	pc := c.peer("n1")
	good := pc.getAddr()
	pc.update(silent.Addr().String(), false, 0)
	waitFor(t, 5*time.Second, "c's link to b down", func() bool { return pc.out.Load() == nil })
	if _, err := got(); !errors.Is(err, ErrPresenceUnanswered) || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("fetch with b unreachable: %v", err)
	}
	pc.update(good, false, 0)
	unblock()
	silent = nil
	waitFor(t, 5*time.Second, "c's link to b back", func() bool { return pc.out.Load() != nil })

	b.kill()
	waitFor(t, 10*time.Second, "the fetch leaves the dead b out", func() bool {
		v, err := got()
		return err == nil && v == "a1=alice"
	})
	if st := c.Stats().Presence; st.QueriesFailed == 0 || a.Stats().Presence.QueriesAnswered == 0 {
		t.Fatalf("stats: c %+v, a %+v", st, a.Stats().Presence)
	}
}

// TestPresenceFramesPerChange measures what a presence change costs its
// node when only some peers want the channel (BENCHMARKS.md): 5 nodes,
// the channel wanted on n0, n1 and n2; n0 churns 1,000 changes (a join
// and a leave in turn). Every change is one frame to each of the two
// interested peers and nothing to the other two.
func TestPresenceFramesPerChange(t *testing.T) {
	nodes := startCluster(t, 5)
	for _, n := range nodes[:3] {
		wantPresence(t, n, "room")
	}
	n0 := nodes[0]
	before := map[string]LinkStats{}
	for _, l := range n0.Stats().Links {
		before[l.Peer] = l
	}
	const changes = 1000
	for i := range changes / 2 {
		id := fmt.Sprintf("c%012d", i) // 13 bytes, as a hub's client id
		present(n0, "room", id, id)
		absent(n0, "room", id)
	}
	waitFor(t, 10*time.Second, "every change applied on n1 and n2", func() bool {
		return nodes[1].rec.pres.mark() == changes && nodes[2].rec.pres.mark() == changes
	})
	var frames, bytes uint64
	for _, l := range n0.Stats().Links {
		f, b := l.PresenceSent-before[l.Peer].PresenceSent, l.PresenceBytesSent-before[l.Peer].PresenceBytesSent
		want := uint64(0)
		if l.Peer == "n1" || l.Peer == "n2" {
			want = changes
		}
		if f != want {
			t.Errorf("to %s: %d presence frames for %d changes, want %d", l.Peer, f, changes, want)
		}
		frames, bytes = frames+f, bytes+b
	}
	t.Logf("%d changes on n0, channel wanted on 2 of its 4 peers: %.2f presence frames and %.1f bytes per change (all links)",
		changes, float64(frames)/changes, float64(bytes)/changes)
}
