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
	c     *Cluster
	name  string
	owner uint64 // the relay.Owner seq of its presence entries: new per peer (presence.go)

	ctx    context.Context // cancelled when the peer leaves or dies, or on Shutdown
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: dial now (the peer is alive again, or reached us)

	out   atomic.Pointer[outConn] // current outbound connection once up; nil otherwise
	state atomic.Int32
	// crashed: our last dial was refused (RST): its host is up but nothing
	// listens, the process is gone, though memberlist has not declared it
	// dead yet. It cannot hold a copy of a publish, so it is not waited for.
	crashed atomic.Bool
	linkUps atomic.Uint64 // handshakes completed
	// failures counts the link's failures since it was last up, and
	// downLogged says the first was logged at info (logLinkError); only
	// the dialer goroutine (runDialer) touches them.
	failures   int
	downLogged bool

	// wants is the peer's interest as its links taught us. It outlives a
	// link: a reconnecting peer keeps getting what it wanted (dropped and
	// counted while the link is down) until its new snapshot replaces it.
	// Only the reader goroutine of the current inbound link touches it, or
	// whoever finds the peer gone with no reader (forgetIfGone).
	wants map[string]struct{}

	// counters for Stats
	msgsSent, bytesSent       atomic.Uint64
	msgsRecv, bytesRecv       atomic.Uint64
	interestSent, interestRcv atomic.Uint64
	drops, dropsDown          atomic.Uint64
	reconnects                atomic.Uint64
	interested                atomic.Int64  // channels this peer is interested in
	presSent, presSentBytes   atomic.Uint64 // presence frames queued for it (presence.go)

	// Presence (presence.go), guarded by Cluster.local.mu. presWants: the
	// presence channels it wants from us, each with the seq of its interest
	// message that said so (the tag of the sets we send it). presSynced:
	// the presence channels we want whose set it sent us, with the tag.
	presWants, presSynced map[string]uint64

	mu      sync.Mutex
	addr    string        // peer-link address from metadata
	acked   uint64        // highest interest seq acked on the current outbound connection
	ackWait chan struct{} // closed and replaced whenever acked changes or the peer goes away
	gone    bool
	in      *inConn   // current inbound connection, if any
	late    []lateSub // subscribes acked before this peer confirmed them
	lateAll bool      // more late subscribes than maxLate: every channel gets a gap
	forgot  bool      // wants was cleared for good
}

// lateSub is a subscribe whose wait timed out before this peer confirmed
// it: publishes made on the peer meanwhile never reached us.
type lateSub struct {
	seq uint64
	ch  string
}

// maxLate bounds the late subscribes remembered per peer.
const maxLate = 1024

func newPeer(c *Cluster, name, addr string) *peer {
	ctx, cancel := context.WithCancel(c.ctx)
	p := &peer{c: c, name: name, ctx: ctx, cancel: cancel, addr: addr, ackWait: make(chan struct{}),
		kick: make(chan struct{}, 1), wants: make(map[string]struct{}), owner: c.pres.owners.Add(1),
		presWants: make(map[string]uint64), presSynced: make(map[string]uint64)}
	p.state.Store(linkConnecting)
	return p
}

func (p *peer) getAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// update records the peer's address as memberlist now reports it. A new
// address, or a restarted process (restarted, now epoch) the current
// outbound connection does not reach, makes that connection stale; either
// way the dialer tries at once, skipping any backoff: a member reported
// alive must be linked now.
func (p *peer) update(addr string, restarted bool, epoch uint64) {
	p.mu.Lock()
	moved := p.addr != addr
	p.addr = addr
	p.mu.Unlock()
	// A link made before gossip told of the restart may already reach the
	// new process: closing it would drop what it carries (with a gap).
	if oc := p.out.Load(); oc != nil && (moved || restarted && oc.peerEpoch != epoch) {
		oc.close()
	}
	signal(p.kick)
}

// outboundSynced reports whether our link to the peer is up and the peer
// acked its snapshot.
func (p *peer) outboundSynced() bool {
	oc := p.out.Load()
	if oc == nil {
		return false
	}
	acked, _, _ := p.ackState()
	return acked >= oc.snapSeq
}

// ackState returns the acked seq and a channel closed when it changes.
func (p *peer) ackState() (acked uint64, changed <-chan struct{}, gone bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.ackWait, p.gone
}

// setAcked records an ack received on oc; stale connections are ignored.
// Late subscribes the ack covers get their gap now.
func (p *peer) setAcked(oc *outConn, seq uint64) {
	p.mu.Lock()
	if p.out.Load() != oc || seq <= p.acked {
		p.mu.Unlock()
		return
	}
	p.acked = seq
	p.broadcastLocked()
	chs, all := p.takeLateLocked(seq)
	p.mu.Unlock()
	signal(p.c.linkEvent)
	if all || len(chs) > 0 {
		if all {
			chs = nil
		}
		p.c.emitGap(p.name, "it confirmed subscribes after they were acked", chs)
	}
}

// addLate remembers a subscribe acked before this peer confirmed seq.
func (p *peer) addLate(seq uint64, ch string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.acked >= seq || p.gone {
		return
	}
	if len(p.late) >= maxLate {
		p.lateAll = true
		return
	}
	p.late = append(p.late, lateSub{seq, ch})
}

// takeLateLocked removes the late subscribes seq covers.
func (p *peer) takeLateLocked(seq uint64) (chs []string, all bool) {
	kept := p.late[:0]
	for _, l := range p.late {
		if l.seq <= seq {
			chs = append(chs, l.ch)
		} else {
			kept = append(kept, l)
		}
	}
	clear(p.late[len(kept):])
	p.late = kept
	if p.lateAll && len(kept) == 0 {
		p.lateAll, all = false, true
	}
	return chs, all
}

// resetAcked forgets acks when the outbound connection ends: the next
// connection starts with a snapshot that must be acked again.
func (p *peer) resetAcked() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acked = 0
	p.broadcastLocked()
}

// wake tells those waiting for the peer's confirmation to look again.
func (p *peer) wake() {
	p.mu.Lock()
	p.broadcastLocked()
	p.mu.Unlock()
	signal(p.c.linkEvent)
}

func (p *peer) broadcastLocked() {
	close(p.ackWait)
	p.ackWait = make(chan struct{})
}

// stop ends both links: the peer left or died, or we shut down. Its
// interest is forgotten once no reader can touch it.
func (p *peer) stop() {
	p.cancel()
	p.mu.Lock()
	if !p.gone {
		p.gone = true
		p.late, p.lateAll = nil, false
		p.broadcastLocked()
	}
	in := p.in
	p.mu.Unlock()
	if oc := p.out.Load(); oc != nil {
		oc.close()
	}
	if in != nil {
		in.close()
	} else {
		p.forgetIfGone()
	}
}

// forgetIfGone drops the peer's interest from the table once it is gone
// and no inbound reader is attached (that reader does it when it ends).
func (p *peer) forgetIfGone() {
	p.mu.Lock()
	if !p.gone || p.in != nil || p.forgot {
		p.mu.Unlock()
		return
	}
	p.forgot = true
	p.mu.Unlock()
	for ch := range p.wants {
		p.c.table.remove(ch, p)
	}
	clear(p.wants)
	p.interested.Store(0)
	p.c.presenceGone(p)
}

// attachInbound makes ic the peer's inbound connection, closing and waiting
// out the previous one first so that only one reader touches wants.
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
			signal(p.kick) // it reached us: our link to it should come up too
			return true
		}
		p.mu.Unlock()
		old.close()
		<-old.finished
	}
}

// detachInbound ends ic's reign; if the peer is gone meanwhile, its
// interest goes with it.
func (p *peer) detachInbound(ic *inConn) {
	p.mu.Lock()
	if p.in == ic {
		p.in = nil
	}
	p.mu.Unlock()
	p.forgetIfGone()
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

// enqueuePublish queues a publish frame of channel ch on the outbound link,
// or counts a drop: the peer's subscribers hear of it with a gap (from the
// gap frame after a full queue, or from the broken link's incident).
func (p *peer) enqueuePublish(f qframe, ch string) (oc *outConn, stampedSeq uint64, ok bool) {
	if p.ctx.Err() != nil {
		return nil, 0, false // dropped: its routes go when its reader ends
	}
	oc = p.out.Load()
	if oc == nil {
		p.droppedLinkDown()
		return nil, 0, false
	}
	if stampedSeq, ok = oc.q.pushPublish(f, ch); !ok {
		p.dropped(1)
	}
	return oc, stampedSeq, ok
}

// dropped counts n publishes not forwarded (queue full, or left in it at
// close), on the peer and node-wide: the node's count outlives the peer.
func (p *peer) dropped(n uint64) {
	p.drops.Add(n)
	p.c.peerDrops.Add(n)
}

// droppedLinkDown counts a publish for the peer while our link was down.
func (p *peer) droppedLinkDown() {
	p.dropsDown.Add(1)
	p.c.peerDropsDown.Add(1)
}
