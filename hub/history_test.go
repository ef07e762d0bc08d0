package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

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
