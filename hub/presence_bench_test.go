package hub

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/meshcast/meshcast/internal/relay"
)

// fillPresence puts n members of ch in a table, a third of them local
// and the rest from two peers, as on one node of a 3-node cluster.
func fillPresence(tb *presenceTable, ch string, n int, info []byte) {
	for i := range n {
		e := relay.PresenceEntry{Ch: ch, Client: fmt.Sprintf("%08x%d", i*2654435761, i), User: fmt.Sprintf("user-%06d", i), Info: info}
		tb.addLocked(uint64(i%3), e, nil)
	}
}

// BenchmarkPresenceReply10k: the client op's answer for 10,000 members
// (sorted, encoded once), as a node builds it under the table's lock.
func BenchmarkPresenceReply10k(b *testing.B) {
	tb := newPresenceTable()
	fillPresence(&tb, "room:x", 10000, []byte(`{"name":"A user"}`))
	req := &request{op: opPresence, ch: "room:x", id: 1, hasID: true}
	b.ReportAllocs()
	var size int
	for b.Loop() {
		members, more := tb.membersLocked("room:x", "", -1)
		size = len(presenceReplyFrame(req, members, more))
	}
	b.ReportMetric(float64(size), "bytes/answer")
}

// BenchmarkPresenceChange: a member joining then leaving a channel of
// 10,000 (the table's share of two presence events).
func BenchmarkPresenceChange(b *testing.B) {
	tb := newPresenceTable()
	fillPresence(&tb, "room:x", 10000, nil)
	e := relay.PresenceEntry{Ch: "room:x", Client: "newcomer", User: "new-user"}
	b.ReportAllocs()
	for b.Loop() {
		tb.addLocked(2, e, nil)
		tb.removeLocked(2, e.Ch, e.Client, e.User, nil)
	}
}

// TestPresenceBytesPerMember reports the heap a member costs a node's
// table, with no info and with 100 bytes of it (docs/presence.md). It
// fails if a member costs more than the documented bound.
func TestPresenceBytesPerMember(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	for _, tc := range []struct {
		info  []byte
		bound float64
	}{{nil, 300}, {make([]byte, 100), 420}} {
		per := heapPer(10000, func() any {
			tb := newPresenceTable()
			var info []byte
			if tc.info != nil {
				info = make([]byte, len(tc.info)) // each member's own, as a peer's frame makes it
			}
			for i := range 10000 {
				e := relay.PresenceEntry{Ch: "room:x", Client: fmt.Sprintf("%08x%d", i, i), User: fmt.Sprintf("user-%06d", i)}
				if info != nil {
					e.Info = append([]byte(nil), info...)
				}
				tb.addLocked(uint64(i%3), e, nil)
			}
			return &tb
		})
		t.Logf("%d bytes of info: %.0f bytes per member (ids of 13-14 bytes, users of 11)", len(tc.info), per)
		if per > tc.bound {
			t.Errorf("%.0f bytes per member with %d bytes of info, over the documented %.0f", per, len(tc.info), tc.bound)
		}
	}
}

// heapPer is the live heap build's result holds, per n.
func heapPer(n int, build func() any) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
