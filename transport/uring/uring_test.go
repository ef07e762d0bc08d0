//go:build linux

package uring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newRing(t testing.TB, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries)
	if err != nil {
		t.Skipf("io_uring not available here: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// pair is one loopback TCP connection: fd is a duplicate of the server
// end's socket, peer the client end (and, for benchmarks, peerFD a
// duplicate of it).
type pair struct {
	fd     int
	file   *os.File
	peer   net.Conn
	peerFD int
}

func pairs(t testing.TB, n int) []pair {
	return makePairs(t, n, false)
}

func makePairs(t testing.TB, n int, peerFDs bool) []pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ps := make([]pair, n)
	for i := range ps {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.(*net.TCPConn).File()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = pair{fd: int(f.Fd()), file: f, peer: c, peerFD: -1}
		t.Cleanup(func() { f.Close(); c.Close() })
		if peerFDs {
			pf, err := c.(*net.TCPConn).File()
			if err != nil {
				t.Fatal(err)
			}
			ps[i].peerFD = int(pf.Fd())
			t.Cleanup(func() { pf.Close() })
		}
	}
	return ps
}

func submit(t *testing.T, r *Ring) map[uint64]Completion {
	t.Helper()
	out, err := r.Submit(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]Completion{}
	for _, c := range out {
		if _, dup := m[c.User]; dup {
			t.Fatalf("completion %d twice", c.User)
		}
		m[c.User] = c
	}
	return m
}

func TestSendManySocketsInOneSubmit(t *testing.T) {
	r := newRing(t, 16)
	ps := pairs(t, 40) // more than one Submit's worth: the ring wraps
	msg := []byte("hello over the ring")
	for round := range 3 {
		for start := 0; start < len(ps); start += r.Cap() {
			end := min(start+r.Cap(), len(ps))
			for i := start; i < end; i++ {
				if !r.Send(ps[i].fd, msg, uint64(i)) {
					t.Fatalf("Send refused below Cap")
				}
			}
			got := submit(t, r)
			if len(got) != end-start {
				t.Fatalf("round %d: %d completions for %d sends", round, len(got), end-start)
			}
			for i := start; i < end; i++ {
				if c := got[uint64(i)]; c.Res != int32(len(msg)) || c.Err() != nil {
					t.Fatalf("send %d: res %d", i, c.Res)
				}
			}
		}
	}
	for i, p := range ps {
		buf := make([]byte, 3*len(msg))
		p.peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(p.peer, buf); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		if want := bytes.Repeat(msg, 3); !bytes.Equal(buf, want) {
			t.Fatalf("peer %d read %q", i, buf)
		}
	}
}

func TestSendCapIsEnforced(t *testing.T) {
	r := newRing(t, 4)
	ps := pairs(t, 1)
	for i := range r.Cap() {
		if !r.Send(ps[0].fd, []byte("x"), uint64(i)) {
			t.Fatalf("Send %d refused", i)
		}
	}
	if r.Send(ps[0].fd, []byte("x"), 99) {
		t.Fatal("Send beyond Cap accepted")
	}
	if got := submit(t, r); len(got) != r.Cap() {
		t.Fatalf("%d completions, want %d", len(got), r.Cap())
	}
}

// A full socket must fail the send with EAGAIN at once, not park it in the
// kernel: Submit waits for every operation, so a parked one would hang.
func TestSendToFullSocketFailsWithEAGAIN(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 1)
	if err := syscall.SetsockoptInt(ps[0].fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	sent := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.Send(ps[0].fd, chunk, 1)
		done := make(chan map[uint64]Completion, 1)
		go func() {
			out, _ := r.Submit(nil)
			m := map[uint64]Completion{}
			for _, c := range out {
				m[c.User] = c
			}
			done <- m
		}()
		var got map[uint64]Completion
		select {
		case got = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Submit parked on a full socket")
		}
		c := got[1]
		if errors.Is(c.Err(), syscall.EAGAIN) {
			break
		}
		if c.Res <= 0 {
			t.Fatalf("send: res %d", c.Res)
		}
		sent += int(c.Res)
		if time.Now().After(deadline) {
			t.Fatal("socket never filled")
		}
	}
	// Everything reported sent arrives; nothing of the refused send does.
	ps[0].file.Close()
	n, err := io.Copy(io.Discard, ps[0].peer)
	if err != nil || int(n) != sent {
		t.Fatalf("peer read %d bytes (%v), ring reported %d sent", n, err, sent)
	}
}

func TestSendErrors(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 1)
	// The peer is gone and has reset the connection: EPIPE or ECONNRESET,
	// and no SIGPIPE (the test process would die).
	ps[0].peer.(*net.TCPConn).SetLinger(0)
	ps[0].peer.Close()
	var last error
	for range 100 {
		r.Send(ps[0].fd, []byte("after the peer left"), 1)
		last = submit(t, r)[1].Err()
		if last != nil {
			break
		}
	}
	if !errors.Is(last, syscall.EPIPE) && !errors.Is(last, syscall.ECONNRESET) {
		t.Fatalf("send to a reset connection: %v", last)
	}
	// A closed descriptor.
	r.Send(1<<20, []byte("x"), 2)
	if err := submit(t, r)[2].Err(); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("send on a bad fd: %v", err)
	}
}

func TestRecv(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 3)
	bufs := make([][]byte, len(ps))
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	// Nothing there yet: EAGAIN, at once.
	for i, p := range ps {
		r.Recv(p.fd, bufs[i], uint64(i))
	}
	for i, c := range submit(t, r) {
		if !errors.Is(c.Err(), syscall.EAGAIN) {
			t.Fatalf("recv %d on an empty socket: res %d", i, c.Res)
		}
	}
	for i, p := range ps {
		if _, err := p.peer.Write([]byte{'a' + byte(i), 'b' + byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	p2 := ps[2]
	p2.peer.Close()
	// Wait until every socket has its bytes (the loopback delivers them
	// before Write returns, but say so rather than rely on it).
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < len(ps); {
		r.Recv(ps[i].fd, bufs[i], uint64(i))
		c := submit(t, r)[uint64(i)]
		switch {
		case c.Res == 2:
			if want := string([]byte{'a' + byte(i), 'b' + byte(i)}); string(bufs[i][:2]) != want {
				t.Fatalf("recv %d: %q, want %q", i, bufs[i][:2], want)
			}
			i++
		case errors.Is(c.Err(), syscall.EAGAIN) && time.Now().Before(deadline):
		default:
			t.Fatalf("recv %d: res %d", i, c.Res)
		}
	}
	// The closed peer's end of stream reads as 0.
	for {
		r.Recv(p2.fd, bufs[2], 7)
		c := submit(t, r)[7]
		if c.Res == 0 {
			break
		}
		if !errors.Is(c.Err(), syscall.EAGAIN) || time.Now().After(deadline) {
			t.Fatalf("recv after the peer closed: res %d", c.Res)
		}
	}
}

// TestRecvMsgTimestamp: RecvMsg returns the data and the ancillary data,
// here the kernel's receive timestamp (SO_TIMESTAMPNS), which the load
// tool uses as a delivery's arrival time.
func TestRecvMsgTimestamp(t *testing.T) {
	r := newRing(t, 8)
	p := pairs(t, 1)[0]
	if err := unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	oob := make([]byte, 128)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	var msg unix.Msghdr
	recv := func() Completion {
		msg = unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
		msg.SetControllen(len(oob))
		r.RecvMsg(p.fd, &msg, 1)
		return submit(t, r)[1]
	}
	if c := recv(); !errors.Is(c.Err(), syscall.EAGAIN) {
		t.Fatalf("recvmsg on an empty socket: res %d", c.Res)
	}
	// The kernel turns receive timestamps on for the whole stack a moment
	// after the first socket asks (deferred work): until then data comes
	// unstamped, so write until a stamp comes back.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := time.Now()
		if _, err := p.peer.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		c := recv()
		for errors.Is(c.Err(), syscall.EAGAIN) && time.Now().Before(deadline) {
			c = recv()
		}
		if c.Res != 5 || string(buf[:5]) != "hello" {
			t.Fatalf("recvmsg: res %d, %q", c.Res, buf[:max(c.Res, 0)])
		}
		cmsgs, err := unix.ParseSocketControlMessage(oob[:msg.Controllen])
		if err != nil {
			t.Fatal(err)
		}
		if len(cmsgs) == 1 {
			m := cmsgs[0]
			if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SO_TIMESTAMPNS || len(m.Data) < 16 {
				t.Fatalf("control message %+v, want SCM_TIMESTAMPNS", m.Header)
			}
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			at := time.Unix(ts.Unix())
			if at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
				t.Fatalf("receive timestamp %v outside the write %v .. now", at, before)
			}
			return
		}
		if len(cmsgs) > 1 || time.Now().After(deadline) {
			t.Fatalf("control messages %+v, want one timestamp", cmsgs)
		}
	}
}

func TestClosedRingCloseTwice(t *testing.T) {
	r, err := New(4)
	if err != nil {
		t.Skipf("io_uring not available here: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSubmitFailureBreaksTheRing: when io_uring_enter fails, Submit says
// so and returns what completed (nothing here), and the ring refuses
// further work instead of resubmitting what the kernel never took.
func TestSubmitFailureBreaksTheRing(t *testing.T) {
	r := newRing(t, 4)
	ps := pairs(t, 1)
	fd := r.fd
	r.fd = 1 << 20 // not a descriptor: io_uring_enter fails with EBADF
	r.Send(ps[0].fd, []byte("never sent"), 1)
	out, err := r.Submit(nil)
	r.fd = fd
	if !errors.Is(err, syscall.EBADF) || len(out) != 0 {
		t.Fatalf("Submit on a bad ring: %v, %d completions", err, len(out))
	}
	if r.Send(ps[0].fd, []byte("x"), 2) {
		t.Fatal("a broken ring took another send")
	}
	if _, err := r.Submit(nil); !errors.Is(err, ErrBroken) {
		t.Fatalf("Submit after a failure: %v, want ErrBroken", err)
	}
	// Nothing reached the peer.
	ps[0].file.Close()
	if n, _ := io.Copy(io.Discard, ps[0].peer); n != 0 {
		t.Fatalf("the peer read %d bytes", n)
	}
}
