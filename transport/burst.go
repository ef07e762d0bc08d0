package transport

import (
	"sync"
	"sync/atomic"
)

// burstChunk is how many claimed connections a writer takes from a burst
// at a time: small enough that every writer gets a share of a 1,000-way
// fan-out at once, large enough that taking one costs nothing next to its
// writes.
const burstChunk = 16

// burst is one frame to write to connections that were idle when it was
// sent: they were claimed (their writing flag set) for it, so nobody else
// writes them until it is done. Writers take chunks of conns until none is
// left; the last one to finish returns it to the pool.
type burst struct {
	frame   []byte
	conns   []*Conn
	next    atomic.Int32 // next chunk to take
	working atomic.Int32 // writers that took the burst and have not finished
}

var burstPool = sync.Pool{New: func() any { return new(burst) }}

// Burst sends one shared frame to every connection of conns, as Send to
// each would: a connection that is closing is skipped, one whose queue would
// overflow is cut off as a slow consumer, and on each the frame follows
// everything sent to it before. It differs from a loop of Sends in how the
// frame goes out: connections with nothing queued or being written (idle
// ones, the usual case for a fan-out) are written straight from frame by
// every shared writer at once, in chunks, so a burst uses all the writers
// from its first write and costs no queue per connection; the others
// (busy) get it queued behind what they have, coalescing as Send does.
// Connections without a file descriptor (TLS) are always queued. While the
// writers are still busy (an earlier burst being written, connections
// waiting on the ready list) every connection is queued instead: a frame
// written alone at once costs a write that, under load, would have carried
// several frames, and the fan-out's throughput depends on that. conns is
// only read during the call; the frame must not be modified afterwards.
func (s *Server) Burst(conns []*Conn, frame []byte) {
	if s.bursting.Load() > 0 || s.ready.waiting() {
		for _, c := range conns {
			_ = c.Send(frame) // its errors say the connection is closing, as Burst's caller knows
		}
		return
	}
	var b *burst
	for _, c := range conns {
		if !c.sendOrClaim(frame) {
			continue
		}
		if b == nil {
			b = burstPool.Get().(*burst)
			b.frame = frame
		}
		b.conns = append(b.conns, c)
	}
	if b == nil {
		return
	}
	chunks := (len(b.conns) + burstChunk - 1) / burstChunk
	n := min(chunks, s.cfg.Writers)
	b.working.Store(int32(n))
	s.bursting.Add(1)
	s.ready.pushBurst(b, n)
}

// sendOrClaim is Send, except that an idle connection with a file
// descriptor is claimed for a direct write of frame instead (true: the
// caller must write it, then call wrote).
func (c *Conn) sendOrClaim(frame []byte) bool {
	c.mu.Lock()
	if c.admitLocked(len(frame)) != nil {
		return false
	}
	if !c.writing && c.rc != nil {
		// Nothing is queued while nobody writes, so frame goes out first.
		c.writing = true
		c.qbytes += len(frame)
		c.mu.Unlock()
		return true
	}
	start := c.pushLocked(frame)
	c.mu.Unlock()
	if start {
		c.srv.ready.push(c)
	}
	return false
}

// writeBurst is a shared writer's share of b: chunks of claimed
// connections, each written straight from the frame.
func (s *Server) writeBurst(b *burst, w *rawWriter) {
	var writes uint64
	for {
		i := int(b.next.Add(1)-1) * burstChunk
		if i >= len(b.conns) {
			break
		}
		chunk := b.conns[i:min(i+burstChunk, len(b.conns))]
		writes += uint64(len(chunk))
		if w.ring != nil {
			s.writeClaimedRing(chunk, b.frame, w)
			continue
		}
		for _, c := range chunk {
			c.writeClaimed(b.frame, w)
		}
	}
	s.stats.writes.Add(writes)
	if b.working.Add(-1) == 0 {
		s.bursting.Add(-1)
		clear(b.conns)
		b.conns, b.frame = b.conns[:0], nil
		b.next.Store(0)
		if cap(b.conns) <= maxPooledFrames {
			burstPool.Put(b)
		}
	}
}

// writeClaimed writes frame to a connection claimed by sendOrClaim. A
// socket that fills up hands the rest to the connection's own blocking
// writer, as flushOnce does; frames queued meanwhile follow it.
func (c *Conn) writeClaimed(frame []byte, w *rawWriter) {
	m, err := w.write(c.rc, frame)
	c.settleClaimed(frame, m, err)
}

// settleClaimed finishes a claimed connection's write of frame, of which m
// bytes went out before err.
func (c *Conn) settleClaimed(frame []byte, m int, err error) {
	if err == nil && m == len(frame) {
		if c.wrote(len(frame)) {
			c.srv.ready.push(c)
		}
		return
	}
	b := c.srv.getBatch()
	b.push(frame)
	b.advance(m)
	c.writeStalled(b, err)
}
