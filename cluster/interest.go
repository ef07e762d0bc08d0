package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

// localInterest is this node's own interest: the channels with at least one
// local subscriber, each with its subscriber count and the sequence number
// of the add that started it. Sequence numbers grow per node, across all
// channels (marks use them too), so one ack covers everything before it.
type localInterest struct {
	mu    sync.Mutex
	seq   uint64
	chans map[string]*localChan
}

type localChan struct {
	seq  uint64 // the add that made this node want the channel
	refs int
	// presence: peers send their entries of it (presence.go). settled: a
	// subscribe of this add was confirmed (or timed out), so its ack may
	// have gone out: from then on remote changes are events.
	presence, settled bool
}

// interestTable maps a channel to the peers interested in it. Slices are
// copy-on-write so Publish reads them after releasing the lock.
type interestTable struct {
	mu   sync.RWMutex
	byCh map[string][]*peer
}

func (t *interestTable) lookup(ch string) []*peer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byCh[ch]
}

func (t *interestTable) add(ch string, p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byCh[ch]
	if slices.Contains(old, p) {
		return
	}
	next := make([]*peer, len(old), len(old)+1)
	copy(next, old)
	t.byCh[ch] = append(next, p)
}

func (t *interestTable) remove(ch string, p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byCh[ch]
	i := slices.Index(old, p)
	if i < 0 {
		return
	}
	if len(old) == 1 {
		delete(t.byCh, ch)
		return
	}
	t.byCh[ch] = slices.Delete(slices.Clone(old), i, i+1)
}

// publish sends a publish made on this node to every peer interested in
// ch. It never blocks on the network: the frame is encoded once and queued
// on each interested peer's link; a full or down link drops and counts.
// data is kept until written; the caller must not modify it afterwards.
// A stamped publish (a channel with history) is stored by the peers it
// goes to, and by backups if too few want ch; stored learns when enough
// did (Config.Replicas).
func (c *Cluster) publish(ch string, data []byte, except string, st *relay.Stamp, stored func(error)) {
	// Before the lookup: a link set up concurrently then knows we are not
	// fresh (its peer may have missed this publish).
	if !c.published.Load() {
		c.published.Store(true)
	}
	peers := c.table.lookup(ch)
	if st != nil {
		c.publishStamped(ch, data, except, st, peers, stored)
		return
	}
	if len(peers) == 0 {
		return
	}
	f := qframe{head: publishHead(ch, data, except), tail: data}
	if len(f.head)+len(data)-headerLen > c.cfg.MaxFrameSize {
		c.tooLarge.Add(1)
		return
	}
	for _, p := range peers {
		p.enqueuePublish(f, ch)
	}
}

// publishStamped sends a publish on a channel with history to the peers
// that want it and to backups, and calls stored once Replicas nodes hold
// it, this one included (or with ErrNotStored).
func (c *Cluster) publishStamped(ch string, data []byte, except string, st *relay.Stamp, peers []*peer, stored func(error)) {
	need := min(c.cfg.Replicas-1, c.livePeers())
	targets := c.storeTargets(ch, peers, need)
	f := qframe{head: stampedHead(ch, data, except, st), tail: data, stamped: true}
	if len(f.head)+len(data)-headerLen > c.cfg.MaxFrameSize {
		c.tooLarge.Add(1)
		if stored != nil {
			stored(ErrNotStored)
		}
		return
	}
	var d *durable
	if stored != nil && need > 0 {
		d = &durable{want: need, outstanding: len(targets), cb: stored, deadline: time.Now().Add(c.cfg.InterestTimeout)}
		c.durables.add(d)
	} else if stored != nil {
		defer stored(nil) // a single node: this copy is all there is
	}
	for _, p := range targets {
		oc, seq, ok := p.enqueuePublish(f, ch)
		switch {
		case d == nil:
		case ok:
			oc.waitStored(seq, d)
		default:
			d.fail()
		}
	}
}

// livePeers counts the peers memberlist reports alive, but those whose
// process is known to be gone (a dial refused) before memberlist notices.
func (c *Cluster) livePeers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.peers {
		if !p.crashed.Load() {
			n++
		}
	}
	return n
}

// subscribe counts one more local subscriber of ch, not a presence
// channel (subscribeAs).
func (c *Cluster) subscribe(ch string) relay.Ticket { return c.subscribeAs(ch, false) }

// subscribeAs counts one more local subscriber of ch; the first tells
// every connected peer, and whether ch is a presence channel. It returns
// the seq of the add in force.
func (c *Cluster) subscribeAs(ch string, presence bool) relay.Ticket {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	lc := c.local.chans[ch]
	if lc == nil {
		c.local.seq++
		lc = &localChan{seq: c.local.seq, presence: presence}
		c.local.chans[ch] = lc
		c.sendControlLocked(interestFrameAs(frameAdd, ch, lc.seq, presence), lc.seq)
	}
	lc.refs++
	return relay.Ticket(lc.seq)
}

// unsubscribe counts one fewer; the last tells every connected peer, and
// on a presence channel drops the peers' entries of it (presence.go).
func (c *Cluster) unsubscribe(ch string) {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	lc := c.local.chans[ch]
	if lc == nil {
		return
	}
	if lc.refs--; lc.refs > 0 {
		return
	}
	delete(c.local.chans, ch)
	c.local.seq++
	c.sendControlLocked(interestFrame(frameRemove, ch, c.local.seq), c.local.seq)
	if lc.presence {
		c.presenceForgetLocked(ch)
	}
}

// sendControlLocked queues control frame f, of interest seq, on every
// connected peer's link. Caller holds local.mu, which orders control
// frames with snapshots. The round-trip probe starts before the frame is
// queued: its ack may come back before pushControl's caller runs again.
func (c *Cluster) sendControlLocked(f []byte, seq uint64) {
	for _, p := range c.peerList() {
		if oc := p.out.Load(); oc != nil {
			oc.startProbe(seq)
			oc.pushControl(f)
		}
	}
}

// sendMarks asks every connected peer to ack a new seq (re-verification
// after a stall) and returns it. A peer whose link is down acks the
// snapshot of its next link, which carries a later seq.
func (c *Cluster) sendMarks() uint64 {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	c.local.seq++
	seq := c.local.seq
	f, err := encodeMsg(frameMark, ackMsg{Seq: seq})
	if err == nil {
		c.sendControlLocked(f, seq)
	}
	return seq
}

// localChannels lists the channels this node wants.
func (c *Cluster) localChannels() []string {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	chs := make([]string, 0, len(c.local.chans))
	for ch := range c.local.chans {
		chs = append(chs, ch)
	}
	return chs
}

// linkUp makes oc p's outbound connection: the snapshot goes first, and
// from then on every interest change reaches oc too (both under local.mu).
func (c *Cluster) linkUp(p *peer, oc *outConn) error {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	if c.draining.Load() {
		return errDraining
	}
	chs := make([]string, 0, len(c.local.chans))
	pres := make(map[string]bool)
	for ch, lc := range c.local.chans {
		chs = append(chs, ch)
		if lc.presence {
			pres[ch] = true
		}
	}
	head := snapshotMsg{Seq: c.local.seq, Epoch: c.epoch, Fresh: !c.published.Load()}
	frames, err := snapshotFrames(chs, pres, head, c.cfg.MaxFrameSize)
	if err == nil {
		frames, err = c.withPresenceLocked(p, frames) // presence.go
	}
	if err != nil {
		return err
	}
	oc.startProbe(head.Seq) // before the snapshot is queued, as in sendControlLocked
	if !oc.q.pushAll(frames) {
		return errSnapshotTooLarge
	}
	oc.snapSeq = head.Seq
	p.out.Store(oc)
	return nil
}

// confirmed reports whether every live peer has acknowledged t.
func (c *Cluster) confirmed(t relay.Ticket) bool { return c.confirmedOn("", t) }

// confirmedOn reports whether every live peer has acknowledged t of ch
// and, if t is the add in force of a presence channel, sent its entries
// of it (presence.go). That settles the add.
func (c *Cluster) confirmedOn(ch string, t relay.Ticket) bool {
	for _, p := range c.peerList() {
		if ok, _, _ := c.peerConfirms(p, ch, t); !ok {
			return false
		}
	}
	c.settle(ch, t)
	return true
}

// peerConfirms reports whether p has acknowledged t (and sent its entries
// of ch, for the add in force of a presence channel), or is gone; changed
// is closed when that may have changed. It is read before the entries, so
// that their arrival in between closes it.
func (c *Cluster) peerConfirms(p *peer, ch string, t relay.Ticket) (ok bool, changed <-chan struct{}, acked bool) {
	seq, changed, gone := p.ackState()
	if gone {
		return true, changed, true
	}
	acked = seq >= uint64(t)
	return acked && c.presenceSynced(p, ch, t), changed, acked
}

// confirmedOrLate is confirmedOn for a subscribe of ch, except that a
// peer whose link to it broke (it was linked before) does not hold it up:
// it cannot confirm until the link is back, and it then reports a gap on
// ch (addLate), as its death would. A new peer is waited for: its first
// link comes up in a round trip, and it serves only once linked.
func (c *Cluster) confirmedOrLate(t relay.Ticket, ch string) bool {
	ok := true
	for _, p := range c.peerList() {
		confirms, _, _ := c.peerConfirms(p, ch, t)
		switch {
		case confirms:
		case p.out.Load() == nil && p.reconnects.Load() > 0:
			p.addLate(uint64(t), ch)
		default:
			ok = false
		}
	}
	if ok {
		c.settle(ch, t)
	}
	return ok
}

// awaitConfirmed blocks until every live peer has acknowledged t, ctx is
// cancelled (ctx.Err()), or InterestTimeout or ctx's deadline passes,
// whichever comes first (ErrInterestTimeout, counted). On timeout each
// late peer remembers ch and reports a gap on it when it finally confirms.
func (c *Cluster) awaitConfirmed(ctx context.Context, ch string, t relay.Ticket) error {
	timer := time.NewTimer(c.cfg.InterestTimeout)
	defer timer.Stop()
	for _, p := range c.peerList() {
		for {
			ok, changed, acked := c.peerConfirms(p, ch, t)
			if ok {
				break
			}
			if !acked && p.out.Load() == nil && p.reconnects.Load() > 0 {
				p.addLate(uint64(t), ch) // its link broke: it reports a gap when back
				break
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return ctx.Err()
				}
			case <-timer.C:
			}
			return c.interestTimedOut(ch, t)
		}
	}
	c.settle(ch, t)
	return nil
}

// interestTimedOut settles t (its subscribers are acked now, with a gap)
// and names the peers that did not confirm it. A peer that acked it but
// has not sent its entries of a presence channel yet needs no late note:
// its entries, when they come, are events (joins) for the subscribers.
func (c *Cluster) interestTimedOut(ch string, t relay.Ticket) error {
	c.settle(ch, t)
	var late []string
	for _, p := range c.peerList() {
		if ok, _, acked := c.peerConfirms(p, ch, t); !ok {
			if !acked {
				p.addLate(uint64(t), ch)
			}
			late = append(late, p.name)
		}
	}
	if len(late) == 0 {
		return nil // confirmed at the last moment
	}
	c.interestTimeouts.Add(1)
	slices.Sort(late)
	// The hub logs these, one line for the subscribes it settles together.
	c.log.Debug("subscribe not confirmed by every peer in time; its subscribers get a gap when they do",
		"channel", ch, "peers", strings.Join(late, ","))
	return fmt.Errorf("%w: %s", ErrInterestTimeout, strings.Join(late, ", "))
}

// clusterRelay is the cluster as a hub sees it (relay.Relay). Its methods
// are the hub's plumbing, so they live on this unexported type rather than
// on Cluster.
type clusterRelay struct{ c *Cluster }

var _ relay.Relay = clusterRelay{}

func (r clusterRelay) Name() string { return r.c.name }
func (r clusterRelay) Publish(ch string, data []byte, except string, st *relay.Stamp, stored func(error)) {
	r.c.publish(ch, data, except, st, stored)
}
func (r clusterRelay) Fetch(ctx context.Context, ch string, after history.Frontier, budget int) ([]history.Result, bool, error) {
	return r.c.fetch(ctx, ch, after, budget)
}
func (r clusterRelay) Subscribe(ch string, presence bool) (relay.Ticket, bool) {
	t := r.c.subscribeAs(ch, presence)
	return t, r.c.confirmedOrLate(t, ch)
}
func (r clusterRelay) Unsubscribe(ch string)                    { r.c.unsubscribe(ch) }
func (r clusterRelay) Confirmed(ch string, t relay.Ticket) bool { return r.c.confirmedOn(ch, t) }
func (r clusterRelay) Standing() error                          { return r.c.standing() }
func (r clusterRelay) Ready(ctx context.Context) error          { return r.c.ready(ctx) }
func (r clusterRelay) Shutdown(ctx context.Context) error       { return r.c.Shutdown(ctx) }
func (r clusterRelay) AwaitConfirmed(ctx context.Context, ch string, t relay.Ticket) error {
	return r.c.awaitConfirmed(ctx, ch, t)
}

// errDraining is why no link comes up once Shutdown began.
var errDraining = errors.New("cluster: shutting down")
