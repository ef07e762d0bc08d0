package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// inConn is a connection a peer dialled to us: it carries that peer's
// publishes and interest; we answer with acks. The interest it brought
// stays with the peer when it closes, until the peer's next snapshot
// replaces it or the peer is gone.
type inConn struct {
	p    *peer
	conn net.Conn // raw, or TLS over it
	raw  net.Conn // the TCP socket, which close closes without blocking

	ackSeq  atomic.Uint64 // highest interest seq processed
	stored  atomic.Uint64 // stamped publishes stored (the dialer numbers them the same way)
	ackWake chan struct{} // capacity 1

	answersMu sync.Mutex
	answers   [][]byte // fetch answers for the writer (bounded: a dialer waits for each)
	once      sync.Once
	done      chan struct{}
	finished  chan struct{} // closed after cleanup: its interest is out of the table

	// incoming collects the channels of a snapshot in progress; when it is
	// done, the peer's wants not in it are removed. Reader goroutine only.
	incoming map[string]struct{}
	synced   bool              // the first snapshot was applied
	bye      bool              // the peer said goodbye: it is leaving, nothing was lost
	intern   map[string]string // channel names seen, so Deliver gets a string without allocating
	pres     presenceIn        // a presence snapshot in progress (presence.go)
}

func (ic *inConn) close() {
	ic.once.Do(func() {
		close(ic.done)
		ic.raw.Close() // not the TLS layer: its Close writes and may block
	})
}

// Inbound connections that have not proved the secret yet hold a
// goroutine and a small buffer each, and anyone who reaches the peer port
// can open them (connGate). Real peers are few, draw on the members' own
// slots, and retry with backoff when refused.
const (
	// maxPendingHandshakes bounds them in total (and, separately, those
	// from members' addresses).
	maxPendingHandshakes = 64
	// maxPendingPerIP bounds those from one address that is not a member's.
	maxPendingPerIP = 4
	// firstFrameTimeout bounds the wait for the dialer's hello (with TLS,
	// the TLS handshake and the hello), so a silent connection holds its
	// slot for a second, not HandshakeTimeout: a real peer sends its hello
	// at once.
	firstFrameTimeout = time.Second
)

func (ic *inConn) wakeAcks() {
	select {
	case ic.ackWake <- struct{}{}:
	default:
	}
}

// acceptLoop serves inbound peer links until the listener closes.
func (c *Cluster) acceptLoop() {
	defer c.wg.Done()
	for {
		conn, err := c.peerLn.Accept()
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Error("peer listener failed", "err", err)
			}
			return
		}
		release, ok := c.gate.admit(conn.RemoteAddr())
		if !ok {
			c.handshakeFailures.Add(1)
			c.junk.links.add(addrIP(conn.RemoteAddr()))
			c.log.Debug("peer link refused: too many handshakes in progress", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		c.wg.Add(1)
		go c.serveInbound(conn, release)
	}
}

// serveInbound runs one inbound link; release gives back its handshake
// slot.
func (c *Cluster) serveInbound(raw net.Conn, release func()) {
	defer c.wg.Done()
	defer raw.Close()
	stop := context.AfterFunc(c.ctx, func() { raw.Close() })
	defer stop()

	conn, fr, name, err := c.handshakeInbound(raw)
	release()
	if err != nil {
		c.inboundHandshakeFailed(raw, err)
		return
	}
	p := c.peer(name)
	if p == nil {
		return // left between admit and here
	}
	ic := &inConn{
		p: p, conn: conn, raw: raw,
		ackWake: make(chan struct{}, 1), done: make(chan struct{}), finished: make(chan struct{}),
		intern: make(map[string]string),
	}
	defer close(ic.finished)
	if !p.attachInbound(ic) {
		return
	}
	defer p.detachInbound(ic)
	defer func() { c.inboundDown(p, ic.bye) }()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ic.ackLoop()
	}()
	fr.max = c.cfg.MaxFrameSize
	err = ic.readLoop(fr)
	ic.close()
	wg.Wait()
	c.log.Debug("inbound peer link closed", "peer", name, "err", err)
}

// handshakeInbound runs TLS (if configured) and the secret handshake with
// a small buffer, and only once the peer is proved gives the link its large
// read buffer, carrying over anything that arrived early.
func (c *Cluster) handshakeInbound(raw net.Conn) (net.Conn, *frameReader, string, error) {
	start := time.Now()
	raw.SetDeadline(start.Add(min(firstFrameTimeout, c.cfg.HandshakeTimeout)))
	conn, err := c.tlsServer(raw) // raw itself without Config.TLS
	if err != nil {
		return nil, nil, "", err
	}
	small := bufio.NewReaderSize(conn, handshakeMaxFrame)
	hfr := newFrameReader(small, handshakeMaxFrame)
	hello, err := readHello(hfr)
	if err != nil {
		return nil, nil, "", err
	}
	raw.SetDeadline(start.Add(c.cfg.HandshakeTimeout)) // the rest: a round trip and two MACs
	name, err := c.hs.server(conn, hfr, hello, c.admit)
	if err == nil {
		err = hfr.release()
	}
	if err != nil {
		return nil, nil, "", err
	}
	conn.SetDeadline(time.Time{})
	early, _ := small.Peek(small.Buffered())
	r := io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	return conn, newFrameReader(bufio.NewReaderSize(r, readBufSize), handshakeMaxFrame), name, nil
}

func (c *Cluster) inboundHandshakeFailed(conn net.Conn, err error) {
	if err == io.EOF { // closed before its first byte: a reachability probe (reconnect.go)
		c.log.Debug("peer port probed", "remote", conn.RemoteAddr().String())
		return
	}
	if errors.Is(err, errRejected) {
		c.rejectedLinks.Add(1)
		c.log.Debug("peer link refused", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	if c.ctx.Err() != nil {
		return
	}
	c.handshakeFailures.Add(1)
	if errors.Is(err, errMalformed) || errors.Is(err, errTooLarge) {
		c.malformedFrames.Add(1)
	}
	c.junk.links.add(addrIP(conn.RemoteAddr())) // anyone can cause it: summed up, not a line each
	c.log.Debug("peer link handshake failed; connection closed",
		"remote", conn.RemoteAddr().String(), "err", err)
}

// admit accepts links only from nodes memberlist reports alive. A node we
// do not know yet retries with backoff until gossip reaches us.
func (c *Cluster) admit(name string) error {
	if c.peer(name) == nil {
		return fmt.Errorf("node %q is not a live member here (yet)", name)
	}
	return nil
}

// readLoop applies the peer's frames in order until the connection fails.
func (ic *inConn) readLoop(fr *frameReader) error {
	c := ic.p.c
	for {
		t, body, err := fr.next()
		if err == nil {
			err = ic.handle(t, body)
		}
		if err != nil {
			return c.readError(ic.p, err)
		}
	}
}

func (ic *inConn) handle(t frameType, body []byte) error {
	p := ic.p
	switch t {
	case framePublish:
		ch, data, except, err := decodePublish(body)
		if err != nil {
			return err
		}
		p.msgsRecv.Add(1)
		p.bytesRecv.Add(uint64(len(body) + headerLen + 1))
		p.c.recv.Deliver(ic.internName(ch), data, string(except), nil)
		return nil
	case frameAdd, frameRemove:
		var m interestMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		p.interestRcv.Add(1)
		if t == frameAdd {
			ic.add(m.Ch)
			if m.Presence {
				ic.presenceWanted(map[string]uint64{m.Ch: m.Seq}) // before the ack
			}
		} else {
			ic.remove(m.Ch)
			ic.presenceUnwanted(m.Ch, nil)
		}
		ic.ack(m.Seq)
		return nil
	case frameSnapshot:
		var m snapshotMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		p.interestRcv.Add(1)
		ic.snapshot(m)
		return nil
	case frameMark:
		var m ackMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		ic.ack(m.Seq)
		return nil
	case frameGap:
		var m gapMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		chs := m.Chs
		if m.All {
			chs = nil
		}
		p.c.emitGap(p.name, "it dropped publishes for us (its link queue was full)", chs)
		return nil
	case frameBye:
		ic.bye = true
		ic.presenceBye()
		return nil
	case frameStamped:
		ch, data, except, st, err := decodeStamped(body)
		if err != nil {
			return err
		}
		p.msgsRecv.Add(1)
		p.bytesRecv.Add(uint64(len(body) + headerLen + 1))
		p.c.recv.Deliver(ic.internName(ch), data, string(except), &st)
		ic.stored.Add(1) // stored by Deliver: tell the dialer
		ic.wakeAcks()
		return nil
	case frameFetch:
		var m fetchMsg
		if err := decodeMsg(body, &m); err != nil {
			return err
		}
		ic.answer(p.c.serveFetch(&m))
		return nil
	}
	if ok, err := ic.handlePresence(t, body); ok { // presence.go
		return err
	}
	return fmt.Errorf("%w: type %d on an inbound link", errMalformed, t)
}

// snapshot applies one chunk of the peer's interest set. The set replaces
// what the peer wanted before (kept across a link reset): channels are
// added as chunks arrive, and those not in the set are removed at the
// last chunk, which also settles the link's incident before any publish
// that follows it is delivered.
func (ic *inConn) snapshot(m snapshotMsg) {
	if ic.incoming == nil {
		ic.incoming = make(map[string]struct{}, len(m.Chs))
	}
	for _, ch := range m.Chs {
		ic.incoming[ch] = struct{}{}
		ic.add(ch)
	}
	if ic.pres.wantPres == nil {
		ic.pres.wantPres = make(map[string]struct{}, len(m.Pres))
	}
	if len(m.Pres) > 0 {
		tags := make(map[string]uint64, len(m.Pres))
		for _, ch := range m.Pres {
			ic.pres.wantPres[ch] = struct{}{}
			tags[ch] = m.Seq
		}
		ic.presenceWanted(tags) // presence.go
	}
	if !m.Done {
		return
	}
	for ch := range ic.p.wants {
		if _, ok := ic.incoming[ch]; !ok {
			ic.remove(ch)
		}
	}
	ic.presenceUnwanted("", ic.pres.wantPres)
	ic.incoming, ic.pres.wantPres = nil, nil
	if !ic.synced {
		ic.synced = true
		ic.p.c.inboundSynced(ic.p, m.Epoch, m.Fresh)
	}
	ic.ack(m.Seq)
}

// maxIntern bounds the intern map; it starts over when full.
const maxIntern = 4096

func (ic *inConn) internName(b []byte) string {
	if s, ok := ic.intern[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if len(ic.intern) >= maxIntern {
		clear(ic.intern)
	}
	s := string(b)
	ic.intern[s] = s
	return s
}

func (ic *inConn) add(ch string) {
	p := ic.p
	if _, ok := p.wants[ch]; ok {
		return
	}
	p.wants[ch] = struct{}{}
	p.c.table.add(ch, p)
	p.interested.Add(1)
}

func (ic *inConn) remove(ch string) {
	p := ic.p
	if _, ok := p.wants[ch]; !ok {
		return
	}
	delete(p.wants, ch)
	p.c.table.remove(ch, p)
	p.interested.Add(-1)
}

// ack records seq as processed; the table was updated before.
func (ic *inConn) ack(seq uint64) {
	if seq > ic.ackSeq.Load() {
		ic.ackSeq.Store(seq)
		ic.wakeAcks()
	}
}

// answer queues a fetch answer for the writer.
func (ic *inConn) answer(f []byte) {
	ic.answersMu.Lock()
	ic.answers = append(ic.answers, f)
	ic.answersMu.Unlock()
	ic.wakeAcks()
}

// ackLoop writes what the acceptor says on a link: interest acks (only the
// highest matters, so they coalesce), stored counts (likewise), and fetch
// answers. An interest ack is held back until our own link to the peer is
// up: it promises that our later publishes reach the peer.
func (ic *inConn) ackLoop() {
	var sentAck, sentStored uint64
	for {
		select {
		case <-ic.ackWake:
		case <-ic.done:
			return
		}
		var out []byte
		if want := ic.ackSeq.Load(); want > sentAck && ic.p.out.Load() != nil {
			out = appendFrame(out, frameAck, mustEncode(ackMsg{Seq: want}))
			sentAck = want
		}
		if n := ic.stored.Load(); n > sentStored {
			out = appendFrame(out, frameStored, mustEncode(ackMsg{Seq: n}))
			sentStored = n
		}
		ic.answersMu.Lock()
		for _, f := range ic.answers {
			out = append(out, f...)
		}
		ic.answers = nil
		ic.answersMu.Unlock()
		if len(out) == 0 {
			continue
		}
		ic.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := ic.conn.Write(out); err != nil {
			ic.close()
			return
		}
	}
}

// mustEncode encodes a small control body whose encoding cannot fail.
func mustEncode(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err) // a fixed struct of integers
	}
	return b
}
