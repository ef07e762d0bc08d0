package transport

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Read token states (epoll mode). Whoever moves a connection from armed to
// busy owns its reading (and the OnClose call) until it gives the token back.
const (
	readArmed    int32 = iota // registered in epoll, nobody reading
	readBusy                  // a worker (or Upgrade) is reading it
	readDead                  // OnClose delivered; nothing more is read
	readLinger                // OnClose delivered; re-armed to see the client close (lingering)
	readDraining              // a worker discards what the lingering client sends
)

// Linger bits: a close the server started ends with its write side shut and
// the socket open until both are set (or Config.CloseLinger passes).
const (
	lingerWritten  int32 = 1 << iota // close frame written, write side shut
	lingerReadDone                   // the client closed its side, or reading failed
)

// Conn is one upgraded WebSocket connection. Its methods are safe from any
// goroutine. A write batch exists only while frames are queued; read buffers
// are as the package doc says (none while an epoll connection is idle, a
// reader goroutine's for the life of any other).
type Conn struct {
	srv *Server
	nc  net.Conn
	rc  syscall.RawConn // nil when the conn has no file descriptor (TLS)
	h   Handler

	id       uint32       // registry key and epoll generation tag
	polled   bool         // read by the epoll workers, not a goroutine
	rstate   atomic.Int32 // read token; only polled connections pass it around
	halves   atomic.Int32 // teardown halves done: socket closed, OnClose returned
	linger   atomic.Int32 // linger bits
	added    atomic.Bool  // EPOLL_CTL_ADD done (polled connections)
	lastSeen atomic.Int64 // unix nanos of the last complete frame received (or of the upgrade)
	closeErr atomic.Pointer[CloseError]

	// mu guards the write queue and the fields below; it is never held
	// across I/O.
	mu          sync.Mutex
	lingerTimer *time.Timer // ends the linger at Config.CloseLinger; stopped by terminate
	q           *batch      // frames waiting for a writer; nil while empty
	qbytes      int         // bytes queued or being written
	writing     bool        // a writer owns the flush (on the ready list, with a shared writer, or its own goroutine)
	terminated  bool        // socket closed

	p parser // touched only by the reading side
}

// Send queues one complete, already-encoded server frame (build it with
// NewTextFrame). The bytes may be shared with other connections and must not
// be modified afterwards. Send never blocks on the network. If the bytes
// queued and being written would exceed Config.WriteQueueSize, the frames not
// yet taken by a writer are dropped, the connection is closed with 1008
// "slow consumer" and ErrQueueFull returned. Once the connection has started
// closing, for whatever reason, Send returns ErrClosed.
func (c *Conn) Send(frame []byte) error {
	c.mu.Lock()
	if err := c.admitLocked(len(frame)); err != nil {
		return err
	}
	start := c.pushLocked(frame)
	c.mu.Unlock()
	if start {
		c.srv.ready.push(c)
	}
	return nil
}

// admitLocked checks that n more bytes may be queued. If not, it unlocks
// mu and returns why: ErrClosed once the connection is closing, or
// ErrQueueFull after cutting it off as a slow consumer. Caller holds mu.
func (c *Conn) admitLocked(n int) error {
	if c.closeErr.Load() != nil {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.qbytes+n > c.srv.cfg.WriteQueueSize {
		c.mu.Unlock()
		ce := &CloseError{Code: ClosePolicyViolation, Reason: ReasonSlowConsumer}
		if c.closeWith(ce, true, true) {
			c.srv.stats.slowConsumers.Add(1)
		}
		return ErrQueueFull
	}
	return nil
}

// Room reports how many more bytes Send would accept now, and false once
// the connection is closing. A sender with much to send (a history
// replay) waits for room instead of being cut off as a slow consumer.
func (c *Conn) Room() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr.Load() != nil {
		return 0, false
	}
	return c.srv.cfg.WriteQueueSize - c.qbytes, true
}

// pushLocked queues frame and reports whether the caller must put the
// connection on the ready list (the queue went from idle to busy).
func (c *Conn) pushLocked(frame []byte) bool {
	if c.q == nil {
		c.q = c.srv.getBatch()
	}
	c.q.push(frame)
	c.qbytes += len(frame)
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// Close queues a close frame after what is already queued, then closes the
// socket once it is written (a write that blocks is bounded by
// Config.WriteTimeout). Codes 1005 and 1006, which must not go on the wire,
// send a close frame without a code. Only the first close of a connection
// counts: later calls, and calls after the peer closed, do nothing.
func (c *Conn) Close(code StatusCode, reason string) {
	c.closeWith(&CloseError{Code: code, Reason: reason}, true, false)
}

// closeWith starts closing the connection for reason ce and reports whether
// this call did (only the first does). With sendFrame a close frame is
// queued and the socket closed once it is written; without, the socket is
// closed now. dropQueued discards frames not yet taken by a writer (a slow
// consumer will not read them anyway).
func (c *Conn) closeWith(ce *CloseError, sendFrame, dropQueued bool) bool {
	c.mu.Lock()
	if !c.closeErr.CompareAndSwap(nil, ce) {
		c.mu.Unlock()
		return false
	}
	if dropQueued && c.q != nil {
		c.qbytes -= c.q.bytes
		c.srv.putBatch(c.q)
		c.q = nil
	}
	start := false
	if sendFrame && !c.terminated {
		start = c.pushLocked(closeFrame(ce.Code, ce.Reason))
		if !ce.Remote {
			c.srv.stats.countClose(ce.Code)
		}
	}
	c.mu.Unlock()
	if start {
		c.srv.ready.push(c)
	}
	if !sendFrame {
		c.terminate()
	}
	c.stopReading()
	return true
}

// closing reports whether closeWith has run.
func (c *Conn) closing() bool { return c.closeErr.Load() != nil }

// stopReading makes the reading side notice the close and call OnClose.
func (c *Conn) stopReading() {
	if !c.polled {
		// Wakes the reader goroutine out of its blocking Read.
		_ = c.nc.SetReadDeadline(time.Now())
		return
	}
	if c.rstate.CompareAndSwap(readArmed, readBusy) {
		c.srv.work.push(c)
	}
}

// terminate closes the socket and drops what is still queued: remove from the
// registry, EPOLL_CTL_DEL, then close, so a reused fd number can never be
// confused with this connection.
func (c *Conn) terminate() {
	c.mu.Lock()
	if c.terminated {
		c.mu.Unlock()
		return
	}
	c.terminated = true
	if c.lingerTimer != nil {
		c.lingerTimer.Stop() // it would keep the connection (and its handler) for the whole linger
	}
	if c.q != nil {
		c.qbytes -= c.q.bytes
		c.srv.putBatch(c.q)
		c.q = nil
	}
	c.mu.Unlock()
	c.srv.unregister(c)
	if c.polled {
		c.srv.unwatch(c)
	}
	_ = c.nc.Close()
	c.halfDone()
}

// deliverClose calls OnClose once the reading side has stopped for good.
func (c *Conn) deliverClose() {
	c.rstate.Store(readDead)
	c.p.reset()
	c.h.OnClose(c.closeErr.Load())
	c.halfDone()
}

// lingers reports whether the connection, closing, ends with a linger: the
// server started the close, so the client may have sent frames it has not
// read, and closing a socket with unread bytes makes the kernel answer with
// a reset. A client OS may then drop what it had not read yet, our close
// frame with it (Windows does), and the client sees 1006 instead of our
// code. A close the client started needs none: it sends nothing after its
// close frame.
func (c *Conn) lingers() bool {
	ce := c.closeErr.Load()
	return ce != nil && !ce.Remote
}

// closeWritten ends a connection whose close frame has been written: at
// once, or, when it lingers, by shutting the write side (the client reads
// our close frame, then the end of the stream) and closing the socket once
// the client has closed too, or after Config.CloseLinger.
func (c *Conn) closeWritten() {
	if !c.lingers() {
		c.terminate()
		return
	}
	if c.rc == nil {
		// TLS: CloseWrite writes an alert, which may block; never on a
		// shared writer.
		c.srv.wg.Add(1)
		go func() {
			defer c.srv.wg.Done()
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			c.shutWrite()
		}()
		return
	}
	c.shutWrite()
}

// shutWrite shuts the write side and starts the linger's clock.
func (c *Conn) shutWrite() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		c.terminate()
		return
	}
	if c.linger.Or(lingerWritten)&lingerReadDone != 0 {
		c.terminate()
		return
	}
	t := time.AfterFunc(c.srv.cfg.CloseLinger, c.terminate)
	c.mu.Lock()
	c.lingerTimer = t
	if c.terminated {
		t.Stop()
	}
	c.mu.Unlock()
}

// readEnded records that the lingering client closed its side (or reading
// it failed); the socket closes once the write side is shut as well.
func (c *Conn) readEnded() {
	if c.linger.Or(lingerReadDone)&lingerWritten != 0 {
		c.terminate()
	}
}

// halfDone counts one of the two ends of a connection's life (socket closed,
// OnClose returned); Shutdown waits for both on every connection.
func (c *Conn) halfDone() {
	if c.halves.Add(1) == 2 {
		c.srv.connWG.Done()
	}
}

// touch records that a frame arrived, for the keepalive sweep.
func (c *Conn) touch() { c.lastSeen.Store(time.Now().UnixNano()) }
