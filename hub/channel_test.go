package hub

import "testing"

// TestRegistryAddRemove walks a channel across the small/large boundary
// in both directions and checks membership, order-independence and the
// relay's interest calls.
func TestRegistryAddRemove(t *testing.T) {
	r := newRegistry()
	relay := &fakeRelay{release: make(chan struct{})}
	sessions := make([]*session, 3*smallChannel)
	for i := range sessions {
		sessions[i] = &session{}
		if _, already := r.add("c", sessions[i], relay); already {
			t.Fatalf("session %d already subscribed", i)
		}
	}
	if _, already := r.add("c", sessions[5], relay); !already {
		t.Fatal("second add of the same session not noticed")
	}
	c := r.channels["c"]
	snap := r.snapshot("c") // a fan-out holds this while we change membership
	for i, s := range sessions {
		if i%2 == 0 {
			r.remove(c, s, relay)
		}
	}
	if len(snap) != len(sessions) {
		t.Fatalf("snapshot changed under a fan-out: %d", len(snap))
	}
	for i, s := range sessions {
		if got := c.index(s) >= 0; got != (i%2 == 1) {
			t.Fatalf("session %d subscribed=%v", i, got)
		}
		if i := c.index(s); i >= 0 && c.subs[i] != s {
			t.Fatalf("index of session is stale")
		}
	}
	for i, s := range sessions {
		if i%2 == 1 {
			r.remove(c, s, relay)
		}
	}
	if r.count() != 0 {
		t.Fatal("empty channel not released")
	}
	if _, interest := relay.snapshot(); len(interest) != 2 || interest[0] != "c=true" || interest[1] != "c=false" {
		t.Fatalf("interest calls %v", interest)
	}
}
