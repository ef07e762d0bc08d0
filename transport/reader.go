package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Read buffer sizes. A read worker owns one buffer for all the connections
// it serves; a reader goroutine owns a smaller one for its connection's life.
const (
	readBufSize          = 16 << 10
	goroutineReadBufSize = 4 << 10
)

// handleBytes feeds bytes read from the socket to the parser. data must be
// writable (payloads are unmasked in place) and is not kept.
func (c *Conn) handleBytes(data []byte) {
	frames, err := c.p.feed(data, c)
	if frames > 0 {
		c.touch()
	}
	if err == nil || errors.Is(err, errStop) {
		return
	}
	var ce *CloseError
	if !errors.As(err, &ce) {
		ce = &CloseError{Code: CloseInternalError, Reason: "internal error"}
		c.srv.log.Error("transport: parse", "err", err)
	}
	if c.closeWith(ce, true, false) && ce.Code == CloseProtocolError {
		c.srv.stats.protocolErrors.Add(1)
	}
}

// handleFrame implements frameSink: it runs on the reading side.
func (c *Conn) handleFrame(op byte, payload []byte) error {
	switch op {
	case opText:
		c.h.OnMessage(payload)
	case opPing:
		// A pong that does not fit the queue means a slow consumer anyway.
		_ = c.Send(controlFrame(opPong, payload))
	case opClose:
		code, reason := parseClose(payload)
		c.closeWith(&CloseError{Code: code, Reason: reason, Remote: true}, true, false)
		return errStop
	}
	if c.closing() {
		return errStop
	}
	return nil
}

// readFailed closes a connection whose socket read returned err (or EOF).
func (c *Conn) readFailed(err error) {
	reason := "connection closed by peer"
	if err != nil && !errors.Is(err, io.EOF) {
		reason = fmt.Sprintf("read: %v", err)
	}
	c.closeWith(&CloseError{Code: CloseAbnormal, Reason: reason, Remote: true}, false, false)
}

// readLoop is the goroutine-per-connection reader (UseGoroutines, non-Linux,
// and connections without a file descriptor). It reads with blocking reads
// until the connection closes; closeWith wakes it with a past read deadline.
func (c *Conn) readLoop() {
	defer c.srv.wg.Done()
	buf := make([]byte, goroutineReadBufSize)
	for !c.closing() {
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.handleBytes(buf[:n])
		}
		if err != nil {
			c.readFailed(err)
		}
	}
	c.deliverClose()
	if c.lingers() {
		c.drainBlocking(buf)
	}
}

// drainBlocking discards what a lingering client sends until it closes its
// side, or the socket is closed (the linger ended).
func (c *Conn) drainBlocking(buf []byte) {
	_ = c.nc.SetReadDeadline(time.Time{})
	for {
		_, err := c.nc.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			// closeWith's wake-up deadline, set after the one above.
			_ = c.nc.SetReadDeadline(time.Time{})
		default:
			c.readEnded()
			return
		}
	}
}

// serve runs on a read worker after epoll reported the connection readable
// (or after closeWith handed it over to deliver OnClose). It reads what is
// there without parking, then gives the read token back.
func (c *Conn) serve(r *rawReader) {
	if c.rstate.Load() == readDraining {
		c.drain(r)
		return
	}
	for i := 0; i < 4 && !c.closing(); i++ {
		n, err := r.read(c.rc)
		if errors.Is(err, errWouldBlock) {
			break
		}
		if n > 0 {
			c.handleBytes(r.buf[:n])
		}
		if err != nil || n == 0 {
			c.readFailed(err)
			break
		}
		if n < len(r.buf) {
			break // drained; level-triggered epoll reports any rest
		}
	}
	c.releaseRead(false)
}

// releaseRead gives the read token back: re-arm the epoll registration, or
// deliver OnClose if the connection is closing. first is the initial
// registration (EPOLL_CTL_ADD) from Upgrade.
func (c *Conn) releaseRead(first bool) {
	if c.closing() {
		c.finishReading()
		return
	}
	c.rstate.Store(readArmed)
	// closeWith may have run after the check above and failed to take the
	// token (it was busy): take it back and deliver OnClose ourselves.
	if c.closing() {
		if c.rstate.CompareAndSwap(readArmed, readBusy) {
			c.finishReading()
		}
		return
	}
	if err := c.srv.watch(c, first); err != nil {
		c.readFailed(fmt.Errorf("epoll: %w", err))
	}
}

// finishReading delivers OnClose, then, when the connection lingers, arms
// it in epoll to see the client close its side.
func (c *Conn) finishReading() {
	c.deliverClose()
	if c.lingers() {
		c.armLinger()
	}
}

// armLinger (re-)arms the lingering connection in epoll: added, if it never
// was (closed from OnOpen, or by another goroutine before its first arm).
func (c *Conn) armLinger() {
	c.rstate.Store(readLinger)
	if err := c.srv.watch(c, !c.added.Load()); err != nil {
		c.readEnded() // closed meanwhile: nothing to wait for
	}
}

// drain discards what a lingering client sent, on a read worker, until it
// closes its side.
func (c *Conn) drain(r *rawReader) {
	for i := 0; i < 4; i++ {
		n, err := r.read(c.rc)
		if errors.Is(err, errWouldBlock) {
			break
		}
		if err != nil || n == 0 {
			c.readEnded()
			return
		}
	}
	c.armLinger()
}
