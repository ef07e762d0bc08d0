package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

type relayStamp = relay.Stamp

func historyConfig(window int) Config {
	cfg := DefaultConfig()
	cfg.Security.Namespaces = map[string]Namespace{"hist": {History: window}}
	return cfg
}

// TestGoAPIHistoryAndSince: Hub.History returns the newest messages with
// positions; an in-process subscription with Since gets what came after
// one, then the live stream, each once; Recovered says it is complete.
func TestGoAPIHistoryAndSince(t *testing.T) {
	t.Parallel()
	h, url := testHub(t, historyConfig(100))
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		if err := h.Publish(ctx, "hist:x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := h.History(ctx, "hist:x", 4)
	if err != nil || len(msgs) != 4 || string(msgs[0].Data) != "7" || string(msgs[3].Data) != "10" {
		t.Fatalf("History: %v %v", msgs, err)
	}
	got := make(chan Message, 100)
	sub, err := h.Subscribe(ctx, "hist:x", func(m Message) { got <- m }, Since(msgs[0].Pos))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !sub.Recovered() {
		t.Fatal("a recovery within the window is not complete")
	}
	dial(t, url).MustAck(`{"op":"pub","ch":"hist:x","data":11,"id":1}`)
	var seen []string
	for len(seen) < 4 {
		select {
		case m := <-got:
			if m.Gap || m.Pos == "" {
				t.Fatalf("got %+v", m)
			}
			seen = append(seen, string(m.Data))
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v", seen)
		}
	}
	if strings.Join(seen, ",") != "8,9,10,11" {
		t.Fatalf("resumed with %v, want 8..11", seen)
	}

	if _, err := h.History(ctx, "plain", 1); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("History of a channel without history: %v", err)
	}
	if _, err := h.Subscribe(ctx, "plain", func(Message) {}, Since(msgs[0].Pos)); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("Since on a channel without history: %v", err)
	}
	if _, err := h.Subscribe(ctx, "hist:y", func(Message) {}, Since(msgs[0].Pos)); !errors.Is(err, ErrBadPosition) {
		t.Fatalf("Since with another channel's position: %v", err)
	}
}

// TestHistoryWindowAndMemory: the window keeps the last N messages of a
// channel, and the node-wide memory bound evicts the oldest first.
func TestHistoryWindowAndMemory(t *testing.T) {
	t.Parallel()
	cfg := historyConfig(50)
	cfg.HistoryMemory = 64 << 10
	h, _ := testHub(t, cfg)
	ctx := context.Background()
	data := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	for i := range 200 {
		if err := h.Publish(ctx, fmt.Sprintf("hist:%d", i%4), data); err != nil {
			t.Fatal(err)
		}
	}
	st := h.store.Stats()
	if st.Bytes > cfg.HistoryMemory || st.Evicted == 0 {
		t.Fatalf("store %+v: over its memory bound, or nothing evicted", st)
	}
	msgs, err := h.History(ctx, "hist:3", 0)
	if err != nil || len(msgs) == 0 || len(msgs) > 50 {
		t.Fatalf("History after evictions: %d %v", len(msgs), err)
	}
}

// TestHistoryConfigChecked: a window over MaxHistory, or a TTL without a
// window, is refused by New.
func TestHistoryConfigChecked(t *testing.T) {
	t.Parallel()
	for _, ns := range []Namespace{{History: MaxHistory + 1}, {History: -1}, {HistoryTTL: Duration(time.Minute)}} {
		cfg := DefaultConfig()
		cfg.Security.Namespaces = map[string]Namespace{"hist": ns}
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: %v", ns, err)
		}
	}
}

// TestRefillFillsHoles: a peer's publish after a hole in its stream waits
// while the node fetches what is missing; the subscriber gets the whole
// stream in order, once, and no gap. A gap from the cluster is refilled
// too; only what no peer holds becomes a gap frame, where it is.
func TestRefillFillsHoles(t *testing.T) {
	t.Parallel()
	relay := newFakeRelay()
	close(relay.release)
	cfg := historyConfig(100)
	cfg.Cluster = relay
	_, url := testHub(t, cfg)
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"hist:r","id":1}`)

	const stream = 77
	now := time.Now().UnixMilli()
	msg := func(seq uint64) history.Msg {
		return history.Msg{Stream: stream, Seq: seq, Time: now + int64(seq), Data: []byte(fmt.Sprint(seq))}
	}
	var mu sync.Mutex
	held := map[uint64]bool{2: true, 3: true} // what the peers hold
	relay.mu.Lock()
	relay.fetch = func(ch string, after history.Frontier) ([]history.Result, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		var r history.Result
		for seq := uint64(1); seq <= 10; seq++ {
			if held[seq] && seq > after.Get(stream) {
				r.Msgs = append(r.Msgs, msg(seq))
			}
		}
		first, last := uint64(2), uint64(3)
		for seq := uint64(6); seq <= 10; seq++ {
			if held[seq] {
				last = seq
			}
		}
		r.Spans = []history.Span{{Stream: stream, First: first, Last: last}}
		return []history.Result{r}, true, nil
	}
	relay.mu.Unlock()
	deliver := func(seq uint64) {
		m := msg(seq)
		relay.recv.Deliver("hist:r", m.Data, "", &relayStamp{Stream: m.Stream, Seq: m.Seq, Time: m.Time})
	}
	deliver(1)
	deliver(4) // 2 and 3 are missing: held until the refill brings them
	for want := 1; want <= 4; want++ {
		if m := c.ReadJSON(); m["op"] != "msg" || m["data"] != float64(want) {
			t.Fatalf("want %d, got %v", want, m)
		}
	}
	// 5 is lost everywhere; 6 arrives and the peers have it too: 6 comes
	// after a gap frame, once.
	mu.Lock()
	held[6] = true
	mu.Unlock()
	deliver(6)
	if m := c.ReadJSON(); m["op"] != "gap" {
		t.Fatalf("want a gap for the hole no one can fill, got %v", m)
	}
	if m := c.ReadJSON(); m["data"] != float64(6) {
		t.Fatalf("after the gap: %v", m)
	}
	deliver(6) // a repeat: dropped
	deliver(7)
	if m := c.ReadJSON(); m["data"] != float64(7) {
		t.Fatalf("after a repeat: %v", m)
	}
	// The cluster reports a gap (a link broke): 8 never came live, the
	// peers have it, so the refill delivers it and no gap frame goes out.
	mu.Lock()
	held[7], held[8] = true, true
	mu.Unlock()
	relay.recv.Gap([]string{"hist:r"})
	if m := c.ReadJSON(); m["op"] != "msg" || m["data"] != float64(8) {
		t.Fatalf("refill after the cluster's gap: %v", m)
	}
}
