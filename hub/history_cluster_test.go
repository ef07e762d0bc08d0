package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

// Channels with history on hubs joined by real clusters over loopback.
// The fault suite (cmd/meshcast, -tags faults) found the bugs these pin
// down; here each is made to happen at a chosen moment: a node can be
// told to lose what its peers send it (as a broken link does) and to
// hold a refill after its peers answered.

// testNode is a hub on a real cluster, with a hand on what reaches it.
type testNode struct {
	*Hub
	tap *tapCluster
}

// tapCluster is a cluster whose deliveries to the hub can be dropped (a
// link that loses frames), whose answers to peers' fetches can be empty
// (a node that is gone), and whose own fetches can be held after the
// peers answered (a refill that takes its time).
type tapCluster struct {
	*cluster.Cluster
	drop   atomic.Bool // deliveries to the hub are lost
	forget atomic.Bool // peers' fetches are answered as if the hub held nothing
	// onPublish, if set, is called when the hub hands a publish to the
	// relay, before the relay sends it.
	onPublish atomic.Pointer[func(ch string)]

	mu      sync.Mutex
	hold    chan struct{} // non-nil: a fetch waits for it to close, after its answers came
	fetched chan struct{} // receives once per fetch held
}

func (c *tapCluster) Attach(r relay.Receiver, log *slog.Logger) (relay.Relay, error) {
	rl, err := c.Cluster.Attach(tapReceiver{r, c}, log)
	if err != nil {
		return nil, err
	}
	return tapRelay{rl, c}, nil
}

type tapReceiver struct {
	relay.Receiver
	c *tapCluster
}

func (r tapReceiver) Deliver(ch string, data []byte, except string, st *relay.Stamp) {
	if !r.c.drop.Load() {
		r.Receiver.Deliver(ch, data, except, st)
	}
}

func (r tapReceiver) History(ch string, after history.Frontier, budget int) history.Result {
	if r.c.forget.Load() {
		return history.Result{}
	}
	return r.Receiver.History(ch, after, budget)
}

type tapRelay struct {
	relay.Relay
	c *tapCluster
}

func (r tapRelay) Publish(ch string, data []byte, except string, st *relay.Stamp, stored func(error)) {
	if f := r.c.onPublish.Load(); f != nil {
		(*f)(ch)
	}
	r.Relay.Publish(ch, data, except, st, stored)
}

func (r tapRelay) Fetch(ctx context.Context, ch string, after history.Frontier, budget int) ([]history.Result, bool, error) {
	answers, ok, err := r.Relay.Fetch(ctx, ch, after, budget)
	r.c.mu.Lock()
	hold, fetched := r.c.hold, r.c.fetched
	r.c.mu.Unlock()
	if hold != nil {
		fetched <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}
	return answers, ok, err
}

// holdFetches makes every fetch wait, once its answers came, until the
// returned release is called; fetched receives once per fetch held.
func (c *tapCluster) holdFetches() (fetched <-chan struct{}, release func()) {
	hold, f := make(chan struct{}), make(chan struct{}, 16)
	c.mu.Lock()
	c.hold, c.fetched = hold, f
	c.mu.Unlock()
	return f, func() {
		c.mu.Lock()
		c.hold = nil
		c.mu.Unlock()
		close(hold)
	}
}

// startHistoryHubs starts n hubs with history on the "hist" namespace,
// each on its own cluster node, joined and linked.
func startHistoryHubs(t *testing.T, n, window int) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range n {
		cfg := cluster.Config{NodeName: fmt.Sprintf("h%d", i), GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
			Secret: []byte("history cluster test secret"), Memberlist: func(mc *memberlist.Config) {
				mc.GossipInterval = 50 * time.Millisecond
				mc.PushPullInterval = time.Second
			}}
		if i > 0 {
			cfg.Join = []string{fmt.Sprintf("127.0.0.1:%d", nodes[0].tap.GossipPort())}
		}
		cl, err := cluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tap := &tapCluster{Cluster: cl}
		h, err := New(Config{Cluster: tap, Security: SecurityConfig{Namespaces: map[string]Namespace{
			"hist": {History: window},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		nodes = append(nodes, &testNode{h, tap})
	}
	waitFor(t, 20*time.Second, "every node linked to every other and ready", func() bool {
		for _, nd := range nodes {
			up := 0
			for _, l := range nd.tap.Stats().Links {
				if l.State == "up" && l.InboundUp {
					up++
				}
			}
			if up != n-1 || nd.Standing() != nil {
				return false
			}
		}
		return true
	})
	return nodes
}

// recorder is an in-process subscriber that keeps what it gets.
type recorder struct {
	mu  sync.Mutex
	got []Message
}

func (r *recorder) add(m Message) {
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
}

// events lists what came: the data of each message, "gap" for a gap.
func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, m := range r.got {
		out[i] = string(m.Data)
		if m.Gap {
			out[i] = "gap"
		}
	}
	return out
}

func (r *recorder) last() Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

func (r *recorder) has(data string) bool { return slices.Contains(r.events(), data) }

func subscribeRec(t *testing.T, h *Hub, ch string, opts ...SubscribeOption) (*recorder, *Subscription) {
	t.Helper()
	r := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The subscription lives until Close: its context is the test's.
	s, err := h.Subscribe(context.WithoutCancel(ctx), ch, r.add, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return r, s
}

func publishN(t *testing.T, h *Hub, ch string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := h.Publish(context.Background(), ch, json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

func numbers(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

// TestRecoveryThenRefillNoDuplicates: a subscriber resumes on a node that
// never delivered the stream its position names (the node that delivered
// it to the subscriber died or restarted, or it is just another node).
// When that node then refills the channel (a peer's link broke), it must
// not deliver the subscriber what its recovery already counted as had.
// The fault suite saw this after a restart: 103 duplicates of the killed
// node's publishes, after recovered:true.
func TestRecoveryThenRefillNoDuplicates(t *testing.T) {
	nodes := startHistoryHubs(t, 3, 1000)
	const ch = "hist:dup"
	first, firstSub := subscribeRec(t, nodes[0].Hub, ch)
	publishN(t, nodes[0].Hub, ch, 1, 20)
	waitFor(t, 10*time.Second, "20 messages on h0", func() bool { return len(first.events()) == 20 })
	pos := first.last().Pos
	firstSub.Close()

	// h2 follows the channel from now on, and has never delivered h0's
	// stream.
	subscribeRec(t, nodes[2].Hub, ch)
	resumed, sub := subscribeRec(t, nodes[2].Hub, ch, Since(pos))
	if !sub.Recovered() || len(resumed.events()) != 0 {
		t.Fatalf("resumed on h2 after #20: recovered %v, got %v; want true and nothing", sub.Recovered(), resumed.events())
	}
	// The cluster reports that h2 may have missed publishes: it refills.
	refills := nodes[2].Stats().History.Refills
	nodes[2].gap([]string{ch})
	waitFor(t, 10*time.Second, "h2's refill", func() bool { return nodes[2].Stats().History.Refills > refills })
	publishN(t, nodes[0].Hub, ch, 21, 21)
	waitFor(t, 10*time.Second, "#21 on h2", func() bool { return resumed.has("21") })
	if got := resumed.events(); !slices.Equal(got, []string{"21"}) {
		t.Fatalf("after recovering to #20 on h2 and h2's refill, the subscriber got %v; want only 21", got)
	}
}

// TestPublishGoesToPeersBeforeLocalSubscribers: a node hands a publish on
// a channel without history to its peer links before its own fan-out, so
// subscribers on other nodes do not wait for that fan-out (milliseconds on
// a node with tens of thousands of subscribers). When the relay is asked,
// the local subscriber has not been given the message yet.
func TestPublishGoesToPeersBeforeLocalSubscribers(t *testing.T) {
	nodes := startHistoryHubs(t, 2, 10)
	local, ls := subscribeRec(t, nodes[0].Hub, "plain")
	remote, _ := subscribeRec(t, nodes[1].Hub, "plain")
	var atRelay atomic.Int32 // local subscriber's messages when the relay was asked; -1: not asked
	atRelay.Store(-1)
	check := func(string) {
		ls.mu.Lock()
		queued := len(ls.queue)
		ls.mu.Unlock()
		atRelay.Store(int32(queued + len(local.events())))
	}
	nodes[0].tap.onPublish.Store(&check)
	publishN(t, nodes[0].Hub, "plain", 1, 1)
	waitFor(t, 10*time.Second, "the publish on both nodes", func() bool { return local.has("1") && remote.has("1") })
	if got := atRelay.Load(); got != 0 {
		t.Fatalf("the local subscriber had %d message(s) when the relay was asked (-1: never asked): the fan-out went first", got)
	}
}
