package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

const (
	// readBufSize is large so one read syscall carries hundreds of publishes.
	readBufSize = 256 << 10
	// writeBufSize batches queued frames into few write syscalls.
	writeBufSize = 64 << 10
	// writeTimeout bounds one batch write: a peer that stops reading is
	// reset instead of holding the writer forever.
	writeTimeout = 10 * time.Second
	// dialTimeout bounds connecting to a peer.
	dialTimeout = 3 * time.Second
	// stableLink: a link that stayed up this long resets the backoff.
	stableLink = 5 * time.Second
)

// outConn is one outbound connection after a successful handshake: the
// writer drains q onto conn; the dialer goroutine reads acks from it.
type outConn struct {
	p       *peer
	conn    net.Conn // what the writer writes to: raw, or TLS over it
	raw     net.Conn // the TCP socket, which close closes
	q       *frameQueue
	snapSeq uint64 // the seq of the snapshot that opened the link
	// peerEpoch is the process the link reaches, from its welcome (0:
	// not told).
	peerEpoch uint64
	probe     rttProbe // observe.go: the interest round trip, with Config.Observer

	// wmu guards the publishes on channels with history waiting for the
	// peer to say it stored them.
	wmu        sync.Mutex
	storedUpTo uint64
	waiters    []storeWaiter
	wclosed    bool

	once sync.Once
	done chan struct{}
}

// close ends the link. It closes the TCP socket, not the TLS layer:
// tls.Conn.Close writes a close_notify and may block, and close is called
// under the interest lock (through pushControl).
func (oc *outConn) close() {
	oc.once.Do(func() {
		close(oc.done)
		oc.raw.Close()
	})
}

// pushControl queues an interest frame. Interest must never be lost
// silently, so a full queue resets the link; the reconnect sends a snapshot.
func (oc *outConn) pushControl(fs ...[]byte) {
	if !oc.q.pushAll(fs) {
		oc.p.c.log.Warn("peer link queue full for an interest message; resetting link", "peer", oc.p.name)
		oc.close()
	}
}

// rejectedRetry caps the wait after a peer refused our link because it
// does not know us as a member yet: gossip will tell it within moments.
const rejectedRetry = 250 * time.Millisecond

// runDialer keeps an outbound link to p up while p is alive. The backoff
// only paces failures against a peer that stays unreachable: a kick (the
// peer was reported alive again, or its own link reached us) dials at once.
func (p *peer) runDialer() {
	defer p.c.wg.Done()
	defer p.state.Store(linkClosed)
	b := newBackoff(50*time.Millisecond, 5*time.Second)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.reconnects.Add(1)
		}
		p.state.Store(linkConnecting)
		start := time.Now()
		wasUp := p.linkUps.Load()
		err := p.connectAndServe()
		if p.ctx.Err() != nil || p.c.draining.Load() {
			return
		}
		if time.Since(start) > stableLink {
			b.reset()
		}
		refused := errors.Is(err, syscall.ECONNREFUSED) && p.c.gossipRefused(p.ctx, p.name)
		if p.ctx.Err() != nil || p.c.draining.Load() {
			return // the probe was cut short by the stop, not by the peer
		}
		if p.crashed.Swap(refused) != refused && refused {
			signal(p.c.linkEvent) // a joining node stops waiting for it
			p.c.stand.changed()
		}
		if p.linkUps.Load() != wasUp {
			p.failures, p.downLogged = 0, false // the link was up: a new outage
		}
		p.failures++
		p.c.logLinkError(p, err)
		p.state.Store(linkBackoff)
		delay := b.next()
		if errors.Is(err, errRejected) {
			delay = min(delay, rejectedRetry)
		}
		if p.linkUps.Load() != wasUp {
			// A link that was up just ended: redial at once, so that a
			// crashed peer is known as one (refused) without delay.
			delay = 0
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-p.kick:
			t.Stop()
			b.reset()
		case <-p.ctx.Done():
			t.Stop()
			return
		}
	}
}

// connectAndServe dials, handshakes, runs the link until it fails.
func (p *peer) connectAndServe() error {
	c := p.c
	addr := p.getAddr()
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer raw.Close()
	stop := context.AfterFunc(p.ctx, func() { raw.Close() })
	defer stop()

	raw.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	conn, err := c.tlsClient(p.ctx, raw) // raw itself without Config.TLS
	if err != nil {
		return fmt.Errorf("handshake with %s: %w", addr, err)
	}
	fr := newFrameReader(bufio.NewReaderSize(conn, 4<<10), handshakeMaxFrame)
	peerEpoch, err := c.hs.dial(conn, fr, p.name)
	if err != nil {
		// A handshake cut short because the peer was dropped (or we are
		// shutting down) says nothing about the peer's credentials.
		if !errors.Is(err, errRejected) && p.ctx.Err() == nil {
			c.handshakeFailures.Add(1)
		}
		return fmt.Errorf("handshake with %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	p.crashed.Store(false)
	p.linkUps.Add(1)

	oc := &outConn{p: p, conn: conn, raw: raw, q: newFrameQueue(c.cfg.LinkQueueSize), done: make(chan struct{}), peerEpoch: peerEpoch}
	if err := c.linkUp(p, oc); err != nil {
		return err
	}
	p.state.Store(linkUp)
	p.outboundUp()
	signal(c.linkEvent)
	if p.downLogged {
		c.log.Info("peer link up again", "peer", p.name, "addr", addr, "failures", p.failures)
	} else {
		c.log.Debug("peer link up", "peer", p.name, "addr", addr)
	}
	p.failures, p.downLogged = 0, false

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		oc.writeLoop()
	}()
	err = oc.readAcks(fr)
	oc.close()
	wg.Wait()
	p.out.CompareAndSwap(oc, nil)
	p.resetAcked()
	oc.failWaiters()
	if n := oc.q.close(); n > 0 {
		p.dropped(uint64(n))
	}
	return err
}

// gossipRefused reports whether the member's gossip port refuses a TCP
// connection too. Only then is a refused peer link taken for a process
// that is gone: a live node behind a firewall that rejects its peer port,
// or whose peer listener is on another interface, still answers gossip.
// The probe connection closes before its first byte, which the gossip
// transport counts as a reachability probe, not junk.
func (c *Cluster) gossipRefused(ctx context.Context, name string) bool {
	c.mu.Lock()
	m := c.members[name]
	addr := ""
	if m != nil {
		addr = m.gossipAddr
	}
	c.mu.Unlock()
	if addr == "" {
		return false
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr) // ctx: a shutdown does not wait for it
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	conn.Close()
	return false
}

// readAcks reads what an acceptor may send on our link: interest acks,
// stored counts and fetch answers.
func (oc *outConn) readAcks(fr *frameReader) error {
	fr.max = oc.p.c.cfg.MaxFrameSize // fetch answers are big
	for {
		t, body, err := fr.next()
		if err == nil {
			err = oc.handleAck(t, body)
		}
		if err != nil {
			return oc.p.c.readError(oc.p, err)
		}
	}
}

func (oc *outConn) handleAck(t frameType, body []byte) error {
	switch t {
	case frameAck, frameStored:
		var a ackMsg
		if err := decodeMsg(body, &a); err != nil {
			return err
		}
		if t == frameAck {
			oc.p.setAcked(oc, a.Seq)
			oc.endProbe(a.Seq)
		} else {
			oc.stored(a.Seq)
		}
		return nil
	case frameFetched:
		var m fetchedMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		oc.p.c.fetched(&m)
		return nil
	case framePresenceAnswer:
		var m presenceAnswerMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		oc.p.c.presenceAnswered(&m)
		return nil
	}
	return fmt.Errorf("%w: type %d on an outbound link", errMalformed, t)
}

// writeLoop drains the queue into a bufio.Writer, flushing when it is
// empty. Drops reported by swap become a gap frame right after the frames
// queued before them; a finishing queue ends with a bye.
func (oc *outConn) writeLoop() {
	bw := bufio.NewWriterSize(oc.conn, writeBufSize)
	var spare []qframe
	for {
		batch, drops, finishing := oc.q.swap(spare)
		oc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := oc.writeBatch(bw, batch, drops); err != nil {
			oc.close()
			return
		}
		if len(batch) > 0 {
			clear(batch) // let frames be collected
			spare = batch
			continue
		}
		if finishing {
			oc.bye(bw)
			return
		}
		if bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				oc.close()
				return
			}
		}
		select {
		case <-oc.q.wake:
		case <-oc.done:
			return
		}
	}
}

// bye ends a drained link: the peer knows nothing was lost on it.
func (oc *outConn) bye(bw *bufio.Writer) {
	defer oc.close()
	bw.Write(appendFrame(nil, frameBye, []byte{0x80})) // body: an empty msgpack map
	if err := bw.Flush(); err != nil {
		oc.p.c.log.Debug("bye not delivered", "peer", oc.p.name, "err", err)
	}
}

func (oc *outConn) writeBatch(bw *bufio.Writer, batch []qframe, drops gapMsg) error {
	var pubs, pubBytes, ctl uint64
	for _, f := range batch {
		bw.Write(f.head)
		if _, err := bw.Write(f.tail); err != nil { // an error sticks in bw
			return err
		}
		if frameType(f.head[headerLen]) == framePublish {
			pubs++
			pubBytes += uint64(len(f.head) + len(f.tail))
		} else {
			ctl++
		}
	}
	oc.p.msgsSent.Add(pubs)
	oc.p.bytesSent.Add(pubBytes)
	oc.p.interestSent.Add(ctl)
	if drops.All || len(drops.Chs) > 0 {
		return oc.writeGap(bw, drops)
	}
	return nil
}

// writeGap tells the peer which channels' publishes we dropped for it.
func (oc *outConn) writeGap(bw *bufio.Writer, drops gapMsg) error {
	f, err := encodeMsg(frameGap, drops)
	if err != nil || len(f)-headerLen > oc.p.c.cfg.MaxFrameSize {
		f = appendFrame(nil, frameGap, []byte{0x81, 0xa1, 'a', 0xc3}) // {"a": true}
	}
	_, err = bw.Write(f)
	return err
}

// readError classifies a link read error, counting malformed frames.
func (c *Cluster) readError(p *peer, err error) error {
	if errors.Is(err, errMalformed) || errors.Is(err, errTooLarge) {
		c.malformedFrames.Add(1)
		c.log.Warn("malformed frame from peer; closing link", "peer", p.name, "err", err)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("peer %s closed the link: %w", p.name, err)
	}
	return err
}

// logLinkError logs a failure of p's link, on the dialer goroutine. Only
// the first of an outage is logged at info: a peer that stays unreachable
// is redialled with backoff, several times a second at first, and
// memberlist's view (suspect, dead) and "peer link up again" tell the
// rest.
func (c *Cluster) logLinkError(p *peer, err error) {
	if errors.Is(err, errRejected) {
		c.log.Debug("peer link refused; retrying", "peer", p.name, "err", err)
		return
	}
	if p.downLogged {
		c.log.Debug("peer link down; reconnecting", "peer", p.name, "err", err, "failures", p.failures)
		return
	}
	p.downLogged = true
	c.log.Info("peer link down; reconnecting (further attempts are logged at debug)", "peer", p.name, "err", err)
}
