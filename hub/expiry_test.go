package hub

import (
	"math/rand/v2"
	"testing"
	"time"
)

// expiryEntries counts what the expiry schedule holds.
func (h *Hub) expiryEntries() (seconds, sets int) {
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	return h.sec.times.Len(), len(h.sec.due)
}

// TestExpiryScheduleBoundedBySessions: reconnecting over and over with one
// long-lived token leaves nothing behind in the expiry schedule (it held
// one heap entry per cycle until exp, days later).
func TestExpiryScheduleBoundedBySessions(t *testing.T) {
	h, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	token := hs256(t, claims("alice", 30*24*time.Hour))
	const cycles = 2000
	for i := range cycles {
		dial(t, withToken(url, token)).Conn.Close()
		if i%10 == 0 { // then the next connection finds the schedule empty
			waitFor(t, 10*time.Second, "session closed", func() bool { return h.Stats().Sessions == 0 })
		}
	}
	waitFor(t, 10*time.Second, "sessions closed", func() bool { return h.Stats().Sessions == 0 })
	if secs, sets := h.expiryEntries(); secs != 0 || sets != 0 {
		t.Fatalf("after %d cycles: %d seconds scheduled, %d sets; want none", cycles, secs, sets)
	}
	// A session that stays keeps its second scheduled, once.
	stay := dial(t, withToken(url, token))
	for range 100 {
		dial(t, withToken(url, token)).Conn.Close()
	}
	waitFor(t, 10*time.Second, "sessions closed", func() bool { return h.Stats().Sessions == 1 })
	if secs, sets := h.expiryEntries(); secs != 1 || sets != 1 {
		t.Fatalf("one session left: %d seconds scheduled, %d sets; want 1 and 1", secs, sets)
	}
	stay.Conn.Close()
}

// TestExpiryHeapMatchesASortedSet drives the heap with random adds,
// removes and pops, checked against a plain set.
func TestExpiryHeapMatchesASortedSet(t *testing.T) {
	var q expiryHeap
	want := map[int64]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		sec := r.Int64N(200)
		switch r.IntN(3) {
		case 0:
			q.add(sec)
			want[sec] = true
		case 1:
			q.remove(sec)
			delete(want, sec)
		case 2:
			got, ok := q.due(sec)
			soonest, any := int64(-1), false
			for s := range want {
				if s <= sec && (!any || s < soonest) {
					soonest, any = s, true
				}
			}
			if ok != any || (ok && got != soonest) {
				t.Fatalf("step %d: due(%d) = %d, %v; want %d, %v", i, sec, got, ok, soonest, any)
			}
			if ok {
				delete(want, got)
			}
		}
		if q.Len() != len(want) || len(q.at) != len(want) {
			t.Fatalf("step %d: %d entries, %d indexed, want %d", i, q.Len(), len(q.at), len(want))
		}
	}
}
