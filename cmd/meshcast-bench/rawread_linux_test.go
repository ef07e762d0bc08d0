//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
			if !pl.consume(rc, chunk, 0, time.Now().UnixNano()) {
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
		if pl.consume(&rawConn{s: &subscriber{trk: newSeqTracker(1)}}, in, 0, 0) {
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
		pl.consume(rc, frames[i], 0, time.Now().UnixNano())
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per delivery", allocs)
	}
}

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestKernelStamp(t *testing.T) {
	ts := make([]byte, 16)
	binary.NativeEndian.PutUint64(ts, 1700000000)
	binary.NativeEndian.PutUint64(ts[8:], 123456789)
	const want = 1700000000*int64(time.Second) + 123456789
	stamp := cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, ts)
	other := cmsg(unix.SOL_IP, 1, []byte{1, 2, 3})
	truncated := append([]byte(nil), stamp...)
	(*unix.Cmsghdr)(unsafe.Pointer(&truncated[0])).SetLen(len(stamp) + 8)
	zero := make([]byte, 32)
	for _, tc := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"stamp", stamp, want},
		{"after another message", append(append([]byte(nil), other...), stamp...), want},
		{"none", other, 0},
		{"empty", nil, 0},
		{"shorter than a header", stamp[:8], 0},
		{"length past the end", truncated, 0},
		{"zero length", zero, 0},
		{"too short for a timespec", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, ts[:8]), 0},
	} {
		if got := kernelStamp(tc.oob); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestReaderIdleThread: with --reader-idle the poll loop's thread, and only
// it, runs under SCHED_IDLE.
func TestReaderIdleThread(t *testing.T) {
	w := newWorker(0, io.Discard)
	w.cfg.Reader, w.cfg.ReaderIdle = readerEpoll, true
	before := idleThreads(t)
	if _, err := w.rawLoop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return idleThreads(t) == before+1 })
	w.cancel()
	w.wg.Wait()
	// The loop's thread goes back to the pool at normal priority.
	waitFor(t, 5*time.Second, func() bool { return idleThreads(t) == before })
}

// idleThreads counts this process's threads under SCHED_IDLE.
func idleThreads(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		// Fields after the command (which may hold spaces): policy is
		// field 41 of stat, the 39th after the ")".
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 38 && f[38] == strconv.Itoa(unix.SCHED_IDLE) {
			n++
		}
	}
	return n
}

// TestRawConsumeCountsCoalesced: deliveries read together with a later one
// carry its kernel stamp, and are counted as such. consume runs on the loop
// and on a subscriber's goroutine handing off at once, so it runs here on
// two goroutines (the race detector watches).
func TestRawConsumeCountsCoalesced(t *testing.T) {
	w := newWorker(0, io.Discard)
	w.proto, _ = protocolByName("v1")
	w.cfg.Arrival = arrivalKernel
	pl := &pollLoop{w: w, stamps: true}
	const reads = 100
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &subscriber{trk: newSeqTracker(1), acked: true}
			for r := range reads {
				var three []byte
				for i := range 3 {
					msg := `{"op":"msg","ch":"bench","data":` + string(appendPayload(nil, time.Now().UnixNano(), uint64(3*r+i), 0, 100)) + `}`
					three = serverFrame(three, []byte(msg))
				}
				now := time.Now().UnixNano()
				arrival := now
				if g == 1 {
					arrival = 0 // a hand-off: no stamp, nothing read together
				}
				if !pl.consume(&rawConn{s: s}, three, arrival, now) {
					t.Error("consume refused three frames")
					return
				}
			}
		}()
	}
	wg.Wait()
	st := w.step.Load()
	if got := st.coalesced.Load(); got != 2*reads {
		t.Fatalf("coalesced %d, want %d", got, 2*reads)
	}
	if got := st.unstamped.Load(); got != 3*reads {
		t.Fatalf("unstamped %d, want %d", got, 3*reads)
	}
}

// TestIdleThreadKeptWhenRestoreRefused: without CAP_SYS_NICE the kernel
// refuses to take a thread out of SCHED_IDLE, and backToNormal says so
// (endIdle then keeps the thread locked, for Go to end it with the loop).
func TestIdleThreadKeptWhenRestoreRefused(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NICE, &lim); err == nil && lim.Cur >= 20 {
		t.Skip("RLIMIT_NICE lets any thread back to nice 0")
	}
	type result struct {
		restored, stillIdle bool
		tid                 int
		err                 error
	}
	done := make(chan result)
	go func() {
		// This thread's capabilities change: it must never run another
		// goroutine, so it stays locked and ends with this one.
		runtime.LockOSThread()
		tid := unix.Gettid()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var caps [2]unix.CapUserData
		if err := unix.Capget(&hdr, &caps[0]); err != nil {
			done <- result{err: err}
			return
		}
		caps[unix.CAP_SYS_NICE/32].Effective &^= 1 << (unix.CAP_SYS_NICE % 32)
		if err := unix.Capset(&hdr, &caps[0]); err != nil {
			done <- result{err: err}
			return
		}
		idle := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
		if err := unix.SchedSetAttr(0, &idle, 0); err != nil {
			done <- result{err: err}
			return
		}
		restored := backToNormal()
		attr, err := unix.SchedGetAttr(0, 0)
		done <- result{restored: restored, stillIdle: err == nil && attr.Policy == unix.SCHED_IDLE, tid: tid, err: err}
	}()
	r := <-done
	// Go ends the thread with its goroutine (the main thread, which it
	// cannot end, is parked for good instead); wait for it, so that the
	// next test counts idle threads without it.
	if r.tid != 0 && r.tid != os.Getpid() {
		waitFor(t, 5*time.Second, func() bool {
			_, err := os.Stat("/proc/self/task/" + strconv.Itoa(r.tid))
			return os.IsNotExist(err)
		})
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.restored || !r.stillIdle {
		t.Fatalf("back to normal without CAP_SYS_NICE: reported %v, thread still idle %v", r.restored, r.stillIdle)
	}
}
