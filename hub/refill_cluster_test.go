package hub

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/internal/history"
)

// TestRefillAgainAfterAGapDuringARefill: the cluster reports a possible
// loss while the node is refilling from what the peers answered before
// it: the node must fetch once more, or what was lost after those
// answers stays lost. The fault suite saw it after a partition healed:
// one peer's link came back and started a refill, the other's came back
// 60 ms later, while it ran.
func TestRefillAgainAfterAGapDuringARefill(t *testing.T) {
	nodes := startHistoryHubs(t, 3, 1000)
	const ch = "hist:again"
	got, _ := subscribeRec(t, nodes[1].Hub, ch)
	publishN(t, nodes[0].Hub, ch, 1, 5)
	waitFor(t, 10*time.Second, "1..5 on h1", func() bool { return len(got.events()) == 5 })

	nodes[1].tap.drop.Store(true) // h1 loses what its peers send it
	publishN(t, nodes[0].Hub, ch, 6, 8)
	fetched, release := nodes[1].tap.holdFetches()
	nodes[1].gap([]string{ch}) // the first report: a refill starts
	awaitFetch(t, fetched)     // the peers answered 6..8
	publishN(t, nodes[0].Hub, ch, 9, 10)
	nodes[1].gap([]string{ch}) // the second report, during the refill
	nodes[1].tap.drop.Store(false)
	release()
	waitFor(t, 10*time.Second, "1..10 on h1, with no further publish", func() bool { return len(got.events()) >= 10 })
	if e := got.events(); !slices.Equal(e, numbers(1, 10)) {
		t.Fatalf("h1's subscriber got %v; want 1..10 in order, no gap", e)
	}
}

// TestRefillLiveMessageAfterAHole: a publish that arrives live during a
// refill, after a hole the peers' answers do not fill (what is missing
// was published after they answered), waits for another round instead of
// going out after a gap frame.
func TestRefillLiveMessageAfterAHole(t *testing.T) {
	nodes := startHistoryHubs(t, 3, 1000)
	const ch = "hist:hole"
	got, _ := subscribeRec(t, nodes[1].Hub, ch)
	publishN(t, nodes[0].Hub, ch, 1, 5)
	waitFor(t, 10*time.Second, "1..5 on h1", func() bool { return len(got.events()) == 5 })

	nodes[1].tap.drop.Store(true)
	publishN(t, nodes[0].Hub, ch, 6, 8)
	fetched, release := nodes[1].tap.holdFetches()
	nodes[1].gap([]string{ch})
	awaitFetch(t, fetched) // the peers answered 6..8
	publishN(t, nodes[0].Hub, ch, 9, 10)
	nodes[1].tap.drop.Store(false)
	publishN(t, nodes[0].Hub, ch, 11, 11) // live, held behind the refill
	release()
	waitFor(t, 10*time.Second, "#11 on h1", func() bool { return got.has("11") })
	if e := got.events(); !slices.Equal(e, numbers(1, 11)) {
		t.Fatalf("h1's subscriber got %v; want 1..11 in order, no gap", e)
	}
}

// TestRefillGapAtEachHole: a refill that cannot fill two holes of one
// stream sends a gap frame before the first message after each of them,
// not once for the whole refill (a hole after messages delivered since
// the first gap frame would be silent).
func TestRefillGapAtEachHole(t *testing.T) {
	h, err := New(Config{Security: SecurityConfig{Namespaces: map[string]Namespace{"hist": {History: 100}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	const ch = "hist:holes"
	got, _ := subscribeRec(t, h, ch)
	lim, _ := h.limits(ch)
	cs := h.chanState(ch, lim)
	now := nowMs()
	msg := func(seq uint64) item {
		return item{Msg: history.Msg{Stream: 7, Seq: seq, Time: now, Data: []byte(fmt.Sprint(seq))}, fetched: true}
	}
	cs.mu.Lock()
	h.applyLocked(cs, []item{msg(1), msg(2)}, holeGap, false)
	h.applyLocked(cs, []item{msg(4), msg(5), msg(7)}, holeGap, false) // 3 and 6 are gone
	cs.mu.Unlock()
	waitFor(t, 5*time.Second, "every delivery", func() bool { return got.has("7") })
	if e := strings.Join(got.events(), " "); e != "1 2 gap 4 5 gap 7" {
		t.Fatalf("got %s; want a gap before 4 and before 7", e)
	}
}

// awaitFetch waits until a fetch is held after its answers came.
func awaitFetch(t *testing.T, fetched <-chan struct{}) {
	t.Helper()
	select {
	case <-fetched:
	case <-time.After(10 * time.Second):
		t.Fatal("no refill fetched from the peers within 10s")
	}
}

// TestRefillOwnStreamEvictedElsewhere: a node never misses its own
// publishes, so a refill must not call itself incomplete (and send a gap
// frame) because the peers evicted the oldest of them from their windows.
// The fault suite saw a gap frame on both sides of a healed 60 s
// partition, with nothing missed.
func TestRefillOwnStreamEvictedElsewhere(t *testing.T) {
	nodes := startHistoryHubs(t, 3, 5)
	const ch = "hist:own"
	got, _ := subscribeRec(t, nodes[0].Hub, ch)
	subscribeRec(t, nodes[1].Hub, ch) // h1 keeps the last 5 of h0's stream
	publishN(t, nodes[0].Hub, ch, 1, 20)
	waitFor(t, 10*time.Second, "1..20 on h0", func() bool { return len(got.events()) == 20 })
	before := nodes[0].Stats().History
	nodes[0].gap([]string{ch})
	waitFor(t, 10*time.Second, "h0's refill", func() bool { return nodes[0].Stats().History.Refills > before.Refills })
	if after := nodes[0].Stats().History; after.RefillsIncomplete != before.RefillsIncomplete || slices.Contains(got.events(), "gap") {
		t.Fatalf("h0 refilled with nothing missing: incomplete refills %d -> %d, its subscriber got %v",
			before.RefillsIncomplete, after.RefillsIncomplete, got.events())
	}
}

// TestRefillLastSeqOnlyHere: a node that received a peer's last publish
// that no other node that answered holds (its publisher went away before
// another got it) has missed nothing: a refill is complete.
func TestRefillLastSeqOnlyHere(t *testing.T) {
	nodes := startHistoryHubs(t, 3, 1000)
	const ch = "hist:last"
	got, _ := subscribeRec(t, nodes[0].Hub, ch)
	other, _ := subscribeRec(t, nodes[2].Hub, ch)
	publishN(t, nodes[1].Hub, ch, 1, 5)
	waitFor(t, 10*time.Second, "1..5 on h0 and h2", func() bool { return len(got.events()) == 5 && len(other.events()) == 5 })
	nodes[2].tap.drop.Store(true) // h2 does not get #6
	publishN(t, nodes[1].Hub, ch, 6, 6)
	waitFor(t, 10*time.Second, "#6 on h0", func() bool { return got.has("6") })
	nodes[1].tap.forget.Store(true) // h1 answers fetches as if it held nothing (as if it were gone)
	before := nodes[0].Stats().History
	nodes[0].gap([]string{ch})
	waitFor(t, 10*time.Second, "h0's refill", func() bool { return nodes[0].Stats().History.Refills > before.Refills })
	if after := nodes[0].Stats().History; after.RefillsIncomplete != before.RefillsIncomplete || slices.Contains(got.events(), "gap") {
		t.Fatalf("h0 refilled with nothing missing: incomplete refills %d -> %d, its subscriber got %v",
			before.RefillsIncomplete, after.RefillsIncomplete, got.events())
	}
}
