package hub

import (
	"testing"
	"unsafe"
)

// TestIdleSessionIsSmall: an idle subscribed connection's session and its
// one sub are most of its heap (BENCHMARKS.md, idle memory per
// connection), so their sizes must not creep up unnoticed, and a
// subscribe acked at once leaves no wait queue behind.
func TestIdleSessionIsSmall(t *testing.T) {
	// 160 and 24 are Go size classes: one byte more costs the next class.
	if n := unsafe.Sizeof(session{}); n > 160 {
		t.Errorf("session is %d bytes, want at most 160", n)
	}
	if n := unsafe.Sizeof(sub{}); n > 24 {
		t.Errorf("sub is %d bytes, want at most 24", n)
	}
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"idle","id":1}`)
	subs, _ := h.reg.snapshot("idle")
	if len(subs) != 1 {
		t.Fatalf("%d subscribers of idle, want 1", len(subs))
	}
	if subs[0].waits.Load() != nil {
		t.Error("a subscribe acked at once left a wait queue on its session")
	}
	if got := subs[0].client.Channels(); len(got) != 1 || got[0] != "idle" {
		t.Errorf("Channels() = %v, want [idle]", got)
	}
}
