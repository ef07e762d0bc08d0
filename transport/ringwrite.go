package transport

import (
	"errors"
	"syscall"

	"github.com/meshcast/meshcast/transport/uring"
)

// ringWriter writes a burst's chunk of claimed connections with one
// io_uring_enter instead of one write(2) each: on a VM a system call's
// entry and exit cost about as much as a small loopback send's work, so a
// chunk of 16 costs about half (transport/uring's doc, BENCHMARKS.md
// "Burst latency (issue 15)").
//
// Each connection's descriptor is held (RawConn.Control, nested) until the
// ring's call returns: a descriptor closed by its reader meanwhile could
// otherwise be reused by a new connection and get the frame.
type ringWriter struct {
	ring  *uring.Ring
	conns []*Conn
	frame []byte
	i     int                // next connection to hold
	held  func(fd uintptr)   // h.hold, bound once
	errs  [burstChunk]error  // per connection: not held (closed), or the ring's error
	res   [burstChunk]int32  // per connection: bytes sent, or -errno
	out   []uring.Completion // scratch for Submit
}

func newRingWriter(r *uring.Ring) *ringWriter {
	h := &ringWriter{ring: r, out: make([]uring.Completion, 0, burstChunk)}
	h.held = h.hold
	return h
}

// writeClaimed writes frame to every connection of conns (at most
// burstChunk, each claimed by sendOrClaim) and settles each as
// Conn.writeClaimed does. It reports false if the ring failed as a whole,
// after which the caller should stop using it (the chunk's connections
// were closed: whether their frame went out is unknown).
func (h *ringWriter) writeClaimed(conns []*Conn, frame []byte) (ok bool) {
	h.conns, h.frame, h.i = conns, frame, 0
	clear(h.errs[:])
	h.next()
	ok = true
	for i, c := range conns {
		switch err := h.errs[i]; {
		case errors.Is(err, errRingFailed):
			ok = false
			c.settleClaimed(frame, 0, err)
		case err != nil:
			c.settleClaimed(frame, 0, err)
		case int(h.res[i]) < len(frame) && h.res[i] >= 0:
			// A short send: the socket is full; the rest goes as a blocked write.
			c.settleClaimed(frame, int(h.res[i]), errWouldBlock)
		case h.res[i] >= 0:
			c.settleClaimed(frame, int(h.res[i]), nil)
		case syscall.Errno(-h.res[i]) == syscall.EAGAIN:
			c.settleClaimed(frame, 0, errWouldBlock)
		default:
			c.settleClaimed(frame, 0, syscall.Errno(-h.res[i]))
		}
	}
	h.conns, h.frame = nil, nil
	return ok
}

var errRingFailed = errors.New("transport: io_uring_enter failed")

// next holds the next connection's descriptor, or, with all held, sends.
func (h *ringWriter) next() {
	for h.i < len(h.conns) {
		err := h.conns[h.i].rc.Control(h.held)
		if err == nil {
			return // hold went on from inside Control
		}
		h.errs[h.i] = err
		h.i++
	}
	h.submit()
}

// hold is the RawConn.Control callback: queue the send, go on holding.
func (h *ringWriter) hold(fd uintptr) {
	h.ring.Send(int(fd), h.frame, uint64(h.i))
	h.i++
	h.next()
}

func (h *ringWriter) submit() {
	out, err := h.ring.Submit(h.out[:0])
	h.out = out[:0]
	if err != nil {
		for i := range h.conns {
			if h.errs[i] == nil {
				h.errs[i] = errRingFailed
			}
		}
		return
	}
	for _, c := range out {
		h.res[c.User] = c.Res
	}
}

// ringFor gives a shared writer its ring, or nil to write with write(2):
// the config said so, or io_uring is missing or refused here (logged once
// per server).
func (s *Server) ringFor() *ringWriter {
	if s.cfg.NoIOURing || s.ringRefused.Load() {
		return nil
	}
	r, err := uring.New(burstChunk)
	if err != nil {
		if s.ringRefused.CompareAndSwap(false, true) {
			s.log.Info("transport: io_uring unavailable, bursts are written with one write(2) per connection", "err", err)
		}
		return nil
	}
	return newRingWriter(r)
}

// dropRing stops w using its ring after the ring failed as a whole.
func (s *Server) dropRing(w *rawWriter) {
	s.log.Warn("transport: io_uring_enter failed; this writer goes on with write(2)")
	_ = w.ring.ring.Close()
	w.ring = nil
}
