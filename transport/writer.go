package transport

import (
	"errors"
	"fmt"
	"time"
)

// Scratch sizes: a shared writer copies up to this much of a batch into one
// write; a connection's own blocking writer uses a pooled buffer of its size.
const (
	sharedScratchSize  = 64 << 10
	blockedScratchSize = 32 << 10
)

// writeLoop is one shared writer: it takes connections from the ready list
// and writes what they have queued without blocking.
func (s *Server) writeLoop() {
	defer s.wg.Done()
	w := newRawWriter(sharedScratchSize)
	if w.ring = s.ringFor(); w.ring != nil {
		defer func() {
			if w.ring != nil {
				_ = w.ring.ring.Close()
			}
		}()
	}
	for {
		c, b, ok := s.ready.popAny()
		switch {
		case !ok:
			return
		case b != nil:
			s.writeBurst(b, w)
		case w.ring != nil && c.rc != nil:
			s.flushReady(c, w)
		default:
			c.flushOnce(w)
		}
	}
}

// takeBatch swaps the queue out for writing. With nothing queued it ends the
// writer's ownership and returns nil, ending the connection if the close
// frame (always last) has gone out.
func (c *Conn) takeBatch() *batch {
	c.mu.Lock()
	b := c.q
	c.q = nil
	term := false
	if b == nil {
		c.writing = false
		term = c.closing()
	}
	c.mu.Unlock()
	if term {
		c.closeWritten()
	}
	return b
}

// flushOnce writes one batch with non-blocking writes. If the socket fills up
// (at once for a connection without a file descriptor, which cannot be
// written without blocking) the connection gets its own goroutine to finish;
// otherwise it goes back on the ready list when more was queued meanwhile, so
// one busy connection cannot monopolise a shared writer and frames coalesce
// under load.
func (c *Conn) flushOnce(w *rawWriter) {
	b := c.takeBatch()
	if b == nil {
		return
	}
	c.srv.stats.writes.Add(1)
	c.writeBatch(b, w)
}

// writeBatch writes the rest of b with non-blocking writes, as flushOnce
// says.
func (c *Conn) writeBatch(b *batch, w *rawWriter) {
	for !b.done() {
		n := b.fill(w.buf)
		m, err := w.write(c.rc, w.buf[:n])
		b.advance(m)
		if err != nil {
			c.writeStalled(b, err)
			return
		}
	}
	if more := c.batchDone(b); more {
		c.srv.ready.push(c)
	}
}

// batchDone returns a written batch to the pool and accounts for it as
// wrote does.
func (c *Conn) batchDone(b *batch) (more bool) {
	n := b.bytes
	c.srv.putBatch(b)
	return c.wrote(n)
}

// wrote accounts for n bytes written (a batch, or a burst's frame) and
// reports whether more frames were queued meanwhile (the caller keeps the
// writing role). Otherwise it ends the writing role, ending the connection
// if the close frame was written.
func (c *Conn) wrote(n int) (more bool) {
	c.mu.Lock()
	c.qbytes -= n
	more = c.q != nil
	term := false
	if !more {
		c.writing = false
		term = c.closing()
	}
	c.mu.Unlock()
	if term {
		c.closeWritten()
	}
	return more
}

// flushBlocking is a connection's own writer, started when a non-blocking
// write could not go on: it writes with blocking writes and a deadline until
// the queue is empty, then exits. Write errors and timeouts close the
// connection.
func (c *Conn) flushBlocking(b *batch) {
	defer c.srv.wg.Done()
	bufp := c.srv.scratch.Get().(*[]byte)
	defer c.srv.scratch.Put(bufp)
	buf := *bufp
	for b != nil {
		for !b.done() {
			n := b.fill(buf)
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			m, err := c.nc.Write(buf[:n])
			b.advance(m)
			if err != nil {
				c.writeFailed(b, err)
				return
			}
		}
		c.srv.stats.writes.Add(1)
		// Clear the deadline while still the only writer: left behind, it
		// would fail the shared writers' raw writes once expired.
		_ = c.nc.SetWriteDeadline(time.Time{})
		if !c.batchDone(b) {
			return
		}
		b = c.takeBatch()
	}
}

// writeStalled takes over a batch a shared writer could not finish: the
// connection's own blocking writer goes on if the socket was full
// (errWouldBlock), otherwise the write failed. The caller is a shared
// writer, so the goroutine is counted in wg.
func (c *Conn) writeStalled(b *batch, err error) {
	if errors.Is(err, errWouldBlock) {
		c.srv.stats.blockedWrites.Add(1)
		c.srv.wg.Add(1)
		go c.flushBlocking(b)
		return
	}
	c.writeFailed(b, err)
}

// writeFailed closes the connection after a write error and releases b.
func (c *Conn) writeFailed(b *batch, err error) {
	c.closeWith(&CloseError{Code: CloseAbnormal, Reason: fmt.Sprintf("write: %v", err)}, false, false)
	// Already closing (say, this was the close frame's write timing out):
	// closeWith did nothing, but the socket is useless now.
	c.terminate()
	c.batchDone(b)
}
