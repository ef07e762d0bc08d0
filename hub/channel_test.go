package hub

import "testing"

// TestRegistryAddRemove walks a channel across the small/large boundary
// in both directions and checks membership and order-independence.
func TestRegistryAddRemove(t *testing.T) {
	r := newRegistry()
	sessions := make([]*session, 3*smallChannel)
	for i := range sessions {
		sessions[i] = &session{}
		r.add("c", sessions[i])
	}
	c := r.channels["c"]
	snap, _ := r.snapshot("c") // a fan-out holds this while we change membership
	for i, s := range sessions {
		if i%2 == 0 {
			r.remove(c, s)
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
			r.remove(c, s)
		}
	}
	if r.count() != 0 {
		t.Fatal("empty channel not released")
	}
}
