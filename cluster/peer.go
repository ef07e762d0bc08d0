package cluster

import (
	"context"
	"sync"
	"sync/atomic"
)

// Link states reported in Stats.
const (
	linkConnecting int32 = iota
	linkUp
	linkBackoff
	linkClosed
)

var linkStateNames = [...]string{"connecting", "up", "backoff", "closed"}

// peer is another live node as memberlist reports it: our outbound link to
// it (which carries our publishes and interest) and the inbound link it
// dialled to us (which carries its publishes and interest).
type peer struct {
	c    *Cluster
	name string

	ctx    context.Context // cancelled when the peer leaves or dies, or on Shutdown
	cancel context.CancelFunc

	out   atomic.Pointer[outConn] // current outbound connection once up; nil otherwise
	state atomic.Int32
	// leaving: the peer announced a graceful leave in its metadata.
	leaving atomic.Bool

	// counters for Stats
	msgsSent, bytesSent       atomic.Uint64
	msgsRecv, bytesRecv       atomic.Uint64
	interestSent, interestRcv atomic.Uint64
	drops, dropsDown          atomic.Uint64
	reconnects                atomic.Uint64
	interested                atomic.Int64 // channels this peer is interested in

	mu      sync.Mutex
	addr    string        // peer-link address from metadata
	acked   uint64        // highest interest seq acked on the current outbound connection
	ackWait chan struct{} // closed and replaced whenever acked changes or the peer goes away
	gone    bool
	in      *inConn // current inbound connection, if any
}

func newPeer(c *Cluster, name, addr string) *peer {
	ctx, cancel := context.WithCancel(c.ctx)
	p := &peer{c: c, name: name, ctx: ctx, cancel: cancel, addr: addr, ackWait: make(chan struct{})}
	p.state.Store(linkConnecting)
	return p
}

func (p *peer) getAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// setAddr records a new address and drops the connection to the old one.
func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	changed := p.addr != addr
	p.addr = addr
	p.mu.Unlock()
	if oc := p.out.Load(); changed && oc != nil {
		oc.close()
	}
}

// ackState returns the acked seq and a channel closed when it changes.
func (p *peer) ackState() (acked uint64, changed <-chan struct{}, gone bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.ackWait, p.gone
}

// setAcked records an ack received on oc; stale connections are ignored.
func (p *peer) setAcked(oc *outConn, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out.Load() != oc || seq <= p.acked {
		return
	}
	p.acked = seq
	p.broadcastLocked()
}

// resetAcked forgets acks when the outbound connection ends: the peer
// forgets our interest with it.
func (p *peer) resetAcked() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acked = 0
	p.broadcastLocked()
}

func (p *peer) broadcastLocked() {
	close(p.ackWait)
	p.ackWait = make(chan struct{})
}

// stop ends both links: the peer left or died, or we shut down.
func (p *peer) stop() {
	p.cancel()
	p.mu.Lock()
	if !p.gone {
		p.gone = true
		p.broadcastLocked()
	}
	in := p.in
	p.mu.Unlock()
	if oc := p.out.Load(); oc != nil {
		oc.close()
	}
	if in != nil {
		in.close()
	}
}

// attachInbound makes ic the peer's inbound connection, closing and waiting
// out the previous one first so its interest is gone before ic's arrives.
func (p *peer) attachInbound(ic *inConn) bool {
	for {
		p.mu.Lock()
		if p.gone {
			p.mu.Unlock()
			return false
		}
		old := p.in
		if old == nil {
			p.in = ic
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
		old.close()
		<-old.finished
	}
}

func (p *peer) detachInbound(ic *inConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in == ic {
		p.in = nil
	}
}

// outboundUp wakes the inbound connection's ack writer: acks it held back
// because our link to the peer was not up can go now.
func (p *peer) outboundUp() {
	p.mu.Lock()
	in := p.in
	p.mu.Unlock()
	if in != nil {
		in.wakeAcks()
	}
}

// enqueuePublish queues a publish frame on the outbound link or counts a drop.
func (p *peer) enqueuePublish(f []byte) {
	oc := p.out.Load()
	if oc == nil {
		p.dropsDown.Add(1)
		return
	}
	if !oc.q.push(f) {
		p.drops.Add(1)
	}
}
