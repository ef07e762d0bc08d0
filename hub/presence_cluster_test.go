package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/internal/relay"
)

// Presence on real cluster nodes in one process: presence goes only to
// the nodes that want the channel (docs/presence.md).

// presenceNode is a hub with the presence namespaces on its own cluster
// node, serving WebSockets.
type presenceNode struct {
	h   *Hub
	url string
	cl  *cluster.Cluster
}

func startPresenceHubs(t *testing.T, n int) []*presenceNode {
	t.Helper()
	var nodes []*presenceNode
	for i := range n {
		cfg := cluster.Config{NodeName: fmt.Sprintf("p%d", i), GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
			Secret: []byte("presence cluster test secret"), Memberlist: func(mc *memberlist.Config) {
				mc.GossipInterval = 50 * time.Millisecond
				mc.PushPullInterval = time.Second
			}}
		if i > 0 {
			cfg.Join = []string{fmt.Sprintf("127.0.0.1:%d", nodes[0].cl.GossipPort())}
		}
		cl, err := cluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h, url := presenceHub(t, func(c *Config) { c.Cluster = cl })
		nodes = append(nodes, &presenceNode{h, url, cl})
	}
	waitFor(t, 20*time.Second, "every node linked to every other and ready", func() bool {
		for _, nd := range nodes {
			up := 0
			st := nd.cl.Stats()
			for _, l := range st.Links {
				if l.State == "up" && l.InboundUp {
					up++
				}
			}
			if up != n-1 || st.Standing != "ready" {
				return false
			}
		}
		return true
	})
	return nodes
}

// presenceSent is what nd queued of presence for each peer.
func presenceSent(nd *presenceNode) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range nd.cl.Stats().Links {
		out[l.Peer] = l.PresenceSent
	}
	return out
}

// users lists the members of a presence answer, "user*clients".
func users(m map[string]any) string {
	var out []string
	list, _ := m["members"].([]any)
	for _, x := range list {
		mb, _ := x.(map[string]any)
		out = append(out, fmt.Sprintf("%v*%v", mb["user"], mb["clients"]))
	}
	return strings.Join(out, " ")
}

func memberNames(ms []Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s*%d", m.User, m.Clients))
	}
	return strings.Join(out, " ")
}

// awaitJoin reads c's events until user joined ch.
func awaitJoin(t *testing.T, c *client, ch, user string) {
	t.Helper()
	waitFor(t, 10*time.Second, user+" joins for "+fmt.Sprint(c.Hello["client"]), func() bool {
		events, _ := seen(t, c, ch)
		return slices.Contains(events, "join "+user)
	})
}

// TestPresenceOnlyToInterestedPeers: with a presence channel wanted on
// p0 and p1 only, a join on p0 costs one presence frame, to p1, none to
// p2. Then p2 gains a subscriber, whose presence answer right after its
// ack lists everyone, with no burst of joins before it.
func TestPresenceOnlyToInterestedPeers(t *testing.T) {
	nodes := startPresenceHubs(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	wa, wb := as(t, a.url, "wa"), as(t, b.url, "wb")
	subscribe(t, wa, `{"op":"sub","ch":"room:x","id":1}`)
	subscribe(t, wb, `{"op":"sub","ch":"room:x","id":1}`)
	awaitJoin(t, wa, "room:x", "wb")

	before, total := presenceSent(a), a.cl.Stats().Presence.FramesSent
	alice := as(t, a.url, "alice")
	subscribe(t, alice, `{"op":"sub","ch":"room:x","id":1}`)
	awaitJoin(t, wb, "room:x", "alice")
	after := presenceSent(a)
	if sent := a.cl.Stats().Presence.FramesSent - total; sent != 1 {
		t.Fatalf("alice's join on p0 cost %d presence frames, want 1 (to p1, the one interested peer)", sent)
	}
	if after["p1"]-before["p1"] != 1 || after["p2"] != before["p2"] {
		t.Fatalf("presence frames per peer: before %v, after %v; want one more to p1, none to p2", before, after)
	}

	bob := as(t, b.url, "bob")
	subscribe(t, bob, `{"op":"sub","ch":"room:x","id":1}`)
	carol := as(t, c.url, "carol")
	if got := subscribe(t, carol, `{"op":"sub","ch":"room:x","id":1}`); !slices.Equal(got, []string{"join carol"}) {
		t.Fatalf("carol got %v before her ack, want only her own join", got)
	}
	m := carol.RoundTrip(`{"op":"presence","ch":"room:x","id":2}`)
	if m["op"] != "presence" {
		t.Fatalf("carol got %v between her ack and her presence answer", m)
	}
	if got, want := users(m), "alice*1 bob*1 carol*1 wa*1 wb*1"; got != want {
		t.Fatalf("carol's presence right after her ack: %q, want %q", got, want)
	}

	// Now p2 wants it too: a join on p0 costs one frame to each of p1, p2.
	before, total = presenceSent(a), a.cl.Stats().Presence.FramesSent
	dan := as(t, a.url, "dan")
	subscribe(t, dan, `{"op":"sub","ch":"room:x","id":1}`)
	awaitJoin(t, carol, "room:x", "dan")
	awaitJoin(t, wb, "room:x", "dan")
	after = presenceSent(a)
	if sent := a.cl.Stats().Presence.FramesSent - total; sent != 2 || after["p1"]-before["p1"] != 1 || after["p2"]-before["p2"] != 1 {
		t.Fatalf("dan's join: %d frames, per peer before %v after %v; want one to each", sent, before, after)
	}
}

// TestPresenceQueryWithoutInterest: a node with no subscriber of a
// channel answers its presence (Go API, client op, stats) by asking the
// others, and the answer is the whole view.
func TestPresenceQueryWithoutInterest(t *testing.T) {
	nodes := startPresenceHubs(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	subscribe(t, as(t, a.url, "alice"), `{"op":"sub","ch":"room:q","id":1,"info":{"at":"p0"}}`)
	subscribe(t, as(t, b.url, "alice"), `{"op":"sub","ch":"room:q","id":1}`)
	subscribe(t, as(t, b.url, "bob"), `{"op":"sub","ch":"room:q","id":1}`)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "p0 sees bob", func() bool {
		ms, err := a.h.Presence(ctx, "room:q")
		return err == nil && memberNames(ms) == "alice*2 bob*1"
	})
	ms, err := c.h.Presence(ctx, "room:q")
	if err != nil || memberNames(ms) != "alice*2 bob*1" || string(ms[0].Info) != `{"at":"p0"}` {
		t.Fatalf("p2, without a subscriber: %v %v", ms, err)
	}
	if st, err := c.h.PresenceStats(ctx, "room:q"); err != nil || st != (PresenceStats{Users: 2, Clients: 3}) {
		t.Fatalf("p2 stats: %+v %v", st, err)
	}
	q := as(t, c.url, "quentin")
	if m := q.RoundTrip(`{"op":"presence","ch":"room:q","id":3}`); users(m) != "alice*2 bob*1" {
		t.Fatalf("a client on p2, not subscribed: %v", m)
	}
	if st := c.cl.Stats().Presence; st.Queries < 3 || st.QueriesFailed != 0 {
		t.Fatalf("p2's presence stats %+v: want 3 queries, none failed", st)
	}
	// p2 holds nothing of room:q: nothing was sent to it.
	if n := c.h.PresenceCounts().Entries; n != 0 {
		t.Fatalf("p2 holds %d entries of channels it does not want", n)
	}
}

// TestPresenceQueryUnanswered: when a peer does not answer, the query is
// refused with 503 naming it (client op and API alike).
func TestPresenceQueryUnanswered(t *testing.T) {
	f := newFakeRelay()
	close(f.release)
	f.noView = true
	f.fetchPresence = func(ch string) ([]relay.PresenceEntry, error) {
		return nil, fmt.Errorf("%w: n7", cluster.ErrPresenceUnanswered)
	}
	cfg := DefaultConfig()
	cfg.Security.Namespaces = presenceNamespaces
	cfg.Cluster = f
	h, wsURL, api := apiHub(t, cfg, "k")
	if _, err := h.Presence(context.Background(), "room:u"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "n7") {
		t.Fatalf("Presence: %v", err)
	}
	status, body := get(t, api+"presence?ch=room:u", "k")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "n7") || !strings.Contains(body, "no presence answer") {
		t.Fatalf("API: %d %s", status, body)
	}
	c := dial(t, wsURL)
	if m := c.RoundTrip(`{"op":"presence_stats","ch":"room:u","id":4}`); m["op"] != "err" || m["code"] != float64(503) ||
		!strings.Contains(fmt.Sprint(m["reason"]), "n7") {
		t.Fatalf("client op: %v", m)
	}
	// A subscriber reads its own node's view, which the subscribe made whole.
	subscribe(t, c, `{"op":"sub","ch":"room:u","id":5}`)
	if m := c.RoundTrip(`{"op":"presence_stats","ch":"room:u","id":6}`); stats(m) != "1 users 1 clients" {
		t.Fatalf("subscriber: %v", m)
	}
}

// TestPresenceInterestFlaps: a client on p2 subscribes and unsubscribes
// again and again while users on p0 join and leave. After each ack its
// presence answer plus the events that follow must always agree (no join
// of a user it has, no leave of one it has not), and its final answer is
// the truth.
func TestPresenceInterestFlaps(t *testing.T) {
	nodes := startPresenceHubs(t, 3)
	a, c := nodes[0], nodes[2]
	const n = 5
	var churn []*client
	in := make([]bool, n)
	for i := range n {
		churn = append(churn, as(t, a.url, fmt.Sprintf("u%d", i)))
	}
	fl := as(t, c.url, "flap")
	toggles := make([]int, n)
	step := 0
	// toggle flips one churner without waiting for its ack: the change is
	// in flight while p2 subscribes or unsubscribes.
	toggle := func() {
		i := step % n
		step++
		toggles[i]++
		if in[i] {
			churn[i].SendText(`{"op":"unsub","ch":"room:f","id":9}`)
		} else {
			churn[i].SendText(`{"op":"sub","ch":"room:f","id":9}`)
		}
		in[i] = !in[i]
	}
	// until reads the flapper's frames up to the answer with id, checking
	// events against state once there is one (nil: before the starting
	// point, where they are in the answer to come).
	var state map[string]bool
	until := func(round int, op string, id float64) {
		for {
			m := fl.ReadJSON()
			switch m["op"] {
			case "join", "leave":
				if state == nil {
					continue
				}
				user := fmt.Sprint(m["user"])
				if (m["op"] == "join") == state[user] {
					t.Fatalf("round %d: %s %s, but the state has %v", round, m["op"], user, state)
				}
				state[user] = m["op"] == "join"
			case op:
				if m["id"] == id {
					if op == "presence" {
						state = map[string]bool{}
						for _, u := range strings.Fields(users(m)) {
							state[strings.Split(u, "*")[0]] = true
						}
					}
					return
				}
			default:
				t.Fatalf("round %d: %v", round, m)
			}
		}
	}
	for round := range 25 {
		toggle()
		fl.SendText(`{"op":"sub","ch":"room:f","id":1}`)
		toggle()
		state = nil
		until(round, "ack", 1)
		toggle()
		fl.SendText(`{"op":"presence","ch":"room:f","id":2}`)
		until(round, "presence", 2) // the starting point
		toggle()
		toggle()
		fl.SendText(`{"op":"unsub","ch":"room:f","id":3}`)
		until(round, "ack", 3)
	}
	// Settle the churners (read their acks), then the final view.
	want := []string{"flap*1"}
	for i, cl := range churn {
		for acks := 0; acks < toggles[i]; {
			if m := cl.ReadJSON(); m["op"] == "ack" {
				acks++
			} else if m["op"] == "err" {
				t.Fatalf("u%d: %v", i, m)
			}
		}
		if in[i] {
			want = append(want, fmt.Sprintf("u%d*1", i))
		}
	}
	slices.Sort(want)
	subscribe(t, fl, `{"op":"sub","ch":"room:f","id":4}`)
	if m := fl.RoundTrip(`{"op":"presence","ch":"room:f","id":5}`); users(m) != strings.Join(want, " ") {
		t.Fatalf("final view on p2: %q, want %q", users(m), strings.Join(want, " "))
	}
	if st := c.cl.Stats().Presence; st.QueriesFailed != 0 {
		t.Fatalf("p2: %+v", st)
	}
	t.Logf("p2 ignored %d changes and set channels of ended wants", c.cl.Stats().Presence.Ignored)
}
