//go:build linux

package main

import (
	"io"
	"testing"
	"time"
)

// serverFrame is an unmasked text frame, as a server sends.
func serverFrame(dst, payload []byte) []byte {
	dst = append(dst, 0x81)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, byte(n))
	default:
		dst = append(dst, 126, byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}

// TestRawConsume feeds frames to the poll loop's parser cut at every
// byte: each is delivered once, in order, and the rest kept in between.
func TestRawConsume(t *testing.T) {
	w := newWorker(0, io.Discard)
	w.proto, _ = protocolByName("v1")
	s := &subscriber{trk: newSeqTracker(1), acked: true}
	pl := &pollLoop{w: w}
	var stream []byte
	const frames = 40
	for i := range frames {
		msg := `{"op":"msg","ch":"bench","data":` + string(appendPayload(nil, time.Now().UnixNano(), uint64(i), 0, 100+i*10)) + `}`
		stream = serverFrame(stream, []byte(msg))
	}
	for cut := 1; cut < 300; cut += 7 {
		s.cnt, s.trk = counters{}, newSeqTracker(1)
		rc := &rawConn{s: s}
		for off := 0; off < len(stream); off += cut {
			chunk := append(append([]byte(nil), rc.rest...), stream[off:min(off+cut, len(stream))]...)
			if !pl.consume(rc, chunk, time.Now().UnixNano()) {
				t.Fatalf("cut %d: consume refused the stream", cut)
			}
		}
		if s.cnt.received != frames || s.cnt.lost != 0 || s.cnt.reordered != 0 || s.cnt.foreign != 0 || len(rc.rest) != 0 {
			t.Fatalf("cut %d: counters %+v, rest %d bytes", cut, s.cnt, len(rc.rest))
		}
	}
}

func TestRawConsumeRejects(t *testing.T) {
	w := newWorker(0, io.Discard)
	w.proto, _ = protocolByName("v1")
	pl := &pollLoop{w: w}
	for _, in := range [][]byte{
		{0x01, 0x01, 'x'},                   // not final: the servers do not fragment
		{0x81, 0x81, 1, 2, 3, 4, 'x'},       // masked
		{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 1}, // one byte over the 64 KiB limit
	} {
		if pl.consume(&rawConn{s: &subscriber{trk: newSeqTracker(1)}}, in, 0) {
			t.Fatalf("% x accepted", in)
		}
	}
}

// TestRawConsumeAllocatesNothing: the receive path of a delivery allocates
// nothing, so the load tool's CPU per delivery is the kernel's and the
// bookkeeping's, not the GC's.
func TestRawConsumeAllocatesNothing(t *testing.T) {
	w := newWorker(0, io.Discard)
	w.proto, _ = protocolByName("v1")
	s := &subscriber{trk: newSeqTracker(1), acked: true}
	pl := &pollLoop{w: w}
	rc := &rawConn{s: s, rest: make([]byte, 0, 512)}
	var frames [][]byte
	for i := range 1000 {
		msg := `{"op":"msg","ch":"bench","data":` + string(appendPayload(nil, time.Now().UnixNano(), uint64(i), 0, 100)) + `}`
		frames = append(frames, serverFrame(nil, []byte(msg)))
	}
	i := 0
	allocs := testing.AllocsPerRun(500, func() {
		pl.consume(rc, frames[i], time.Now().UnixNano())
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per delivery", allocs)
	}
}
