package transport

import (
	"errors"
	"math"
	"runtime"
	"syscall"

	"github.com/meshcast/meshcast/transport/uring"
)

// ringWriter sends to up to ringBatch connections with one io_uring_enter
// instead of one write(2) each: on a VM a system call's entry and exit cost
// about as much as a small loopback send's work, so a batch of 16 costs
// about half (transport/uring's doc, BENCHMARKS.md "Burst latency (issue
// 15)"). A shared writer uses it for a burst's chunk of claimed
// connections (one shared frame) and for connections from the ready list
// (each its own queued batch).
//
// Each connection's descriptor is held (RawConn.Control, nested) until the
// ring's call returns: a descriptor closed by its reader meanwhile could
// otherwise be reused by a new connection and get the bytes.
type ringWriter struct {
	ring    *uring.Ring
	conns   []*Conn           // send: the connections being sent to
	ready   []*Conn           // flushReady: the connections with a batch to send
	bufs    [ringBatch][]byte // what to send to conns[i]
	batches [ringBatch]*batch // flushReady: conns[i]'s batch
	popped  []*Conn           // flushReady: scratch for the ready list's connections
	i       int               // next connection to hold
	held    func(fd uintptr)  // h.hold, bound once
	errs    [ringBatch]error  // per connection: its descriptor was closed, or the ring never took it
	res     [ringBatch]int32  // per connection: bytes sent, -errno, or resNone
	failed  error             // the last send's io_uring_enter failed
	out     []uring.Completion
	noFD    [ringBatch]*Conn // flushReady: popped connections without a descriptor (TLS)
	scratch []byte           // flushReady: ringRegion per connection
}

// ringBatch is the most connections one io_uring_enter writes: a burst's
// chunk, or a writer's take from the ready list.
const ringBatch = burstChunk

// ringRegion is each ready connection's share of the ring's scratch
// buffer: a busy connection's coalesced frames under load fit; a batch
// with more queued sends the rest with write(2).
const ringRegion = 16 << 10

// errNotSent: the ring did not take the connection's send (the ring
// failed); the caller sends with write(2) instead.
var errNotSent = errors.New("transport: not sent through the ring")

// resNone marks a send with no completion.
const resNone = math.MinInt32

func newRingWriter(r *uring.Ring) *ringWriter {
	h := &ringWriter{
		ring:    r,
		ready:   make([]*Conn, 0, ringBatch),
		popped:  make([]*Conn, 0, ringBatch),
		out:     make([]uring.Completion, 0, ringBatch),
		scratch: make([]byte, ringBatch*ringRegion),
	}
	h.held = h.hold
	return h
}

// send sends bufs[i] to conns[i] for each i with one io_uring_enter; then
// result(i) says how each went. If io_uring_enter failed it returns why:
// the sends the kernel did not take report errNotSent, and the caller
// should stop using the ring.
func (h *ringWriter) send(conns []*Conn) error {
	h.conns, h.i, h.failed = conns, 0, nil
	clear(h.errs[:len(conns)])
	for i := range conns {
		h.res[i] = resNone
	}
	h.next()
	h.conns = nil
	return h.failed
}

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
	if !h.ring.Send(int(fd), h.bufs[h.i], uint64(h.i)) {
		h.errs[h.i] = errNotSent // the ring is full or broken: no completion will come
	}
	h.i++
	h.next()
}

func (h *ringWriter) submit() {
	out, err := h.ring.Submit(h.out[:0])
	h.out = out[:0]
	h.failed = err
	for _, c := range out {
		h.res[c.User] = c.Res
	}
}

// result is connection i's send as rawWriter.write would report it: m
// bytes went out, errWouldBlock if the socket filled up first.
func (h *ringWriter) result(i int) (m int, err error) {
	if err := h.errs[i]; err != nil {
		return 0, err
	}
	r := h.res[i]
	switch {
	case r == resNone:
		return 0, errNotSent
	case r == -int32(syscall.EAGAIN):
		return 0, errWouldBlock
	case r < 0:
		return 0, syscall.Errno(-r)
	case int(r) < len(h.bufs[i]):
		return int(r), errWouldBlock // a short send: the socket is full
	}
	return int(r), nil
}

// writeClaimedRing writes frame to every connection of conns (at most
// ringBatch, each claimed by sendOrClaim) and settles each as
// Conn.writeClaimed does.
func (s *Server) writeClaimedRing(conns []*Conn, frame []byte, w *rawWriter) {
	h := w.ring
	for i := range conns {
		h.bufs[i] = frame
	}
	failed := h.send(conns)
	var sent uint64
	for i, c := range conns {
		m, err := h.result(i)
		h.bufs[i] = nil
		if errors.Is(err, errNotSent) {
			c.writeClaimed(frame, w)
			continue
		}
		sent++
		c.settleClaimed(frame, m, err)
	}
	s.stats.ringWrites.Add(sent)
	if failed != nil {
		s.dropRing(w, failed)
	}
}

// flushReady is flushOnce for first and for up to ringBatch-1 more
// connections waiting on the ready list, their batches (up to ringRegion
// bytes each) sent with one io_uring_enter.
func (s *Server) flushReady(first *Conn, w *rawWriter) {
	h := w.ring
	popped := s.ready.popConns(append(h.popped[:0], first), ringBatch)
	conns := h.ready[:0]
	noFD := h.noFD[:0] // TLS: flushOnce's path, once the regions are sent
	for _, c := range popped {
		if c.rc == nil {
			noFD = append(noFD, c)
			continue
		}
		b := c.takeBatch()
		if b == nil {
			continue
		}
		i := len(conns)
		region := h.scratch[i*ringRegion : (i+1)*ringRegion]
		h.bufs[i] = region[:b.fill(region)]
		h.batches[i] = b
		conns = append(conns, c)
	}
	clear(popped)
	failed := h.send(conns)
	s.stats.writes.Add(uint64(len(conns)))
	var sent uint64
	for i, c := range conns {
		b := h.batches[i]
		m, err := h.result(i)
		h.batches[i], h.bufs[i] = nil, nil
		if !errors.Is(err, errNotSent) {
			sent++
		}
		b.advance(m)
		if err == nil || errors.Is(err, errNotSent) {
			// The rest of a batch over ringRegion, or all of one the ring
			// did not take, with write(2); then done.
			c.writeBatch(b, w)
		} else {
			c.writeStalled(b, err)
		}
	}
	s.stats.ringWrites.Add(sent)
	clear(conns)
	if failed != nil {
		s.dropRing(w, failed)
	}
	for _, c := range noFD {
		c.flushOnce(w)
	}
	clear(noFD)
}

// ringFor gives a shared writer its ring, or nil to write with write(2):
// the config said so, or io_uring is missing or refused here (logged once
// per server).
func (s *Server) ringFor() *ringWriter {
	if s.cfg.NoIOURing || s.ringRefused.Load() {
		return nil
	}
	setup := uring.New
	if s.cfg.ringSetup != nil {
		setup = s.cfg.ringSetup.New
	}
	r, err := setup(ringBatch)
	if err != nil {
		if s.ringRefused.CompareAndSwap(false, true) && runtime.GOOS == "linux" {
			s.log.Info("transport: io_uring unavailable, writing with one write(2) per connection", "err", err)
		}
		return nil
	}
	return newRingWriter(r)
}

// dropRing stops w using its ring after the ring failed as a whole.
func (s *Server) dropRing(w *rawWriter, err error) {
	s.log.Warn("transport: io_uring_enter failed; this writer goes on with write(2)", "err", err)
	_ = w.ring.ring.Close()
	w.ring = nil
}
