package cluster

import (
	"context"
	"slices"
	"sync"
	"time"
)

// localInterest is this node's own interest: the channels with at least one
// local subscriber, each with the sequence number of the add that started
// it. Sequence numbers grow per node, across all channels.
type localInterest struct {
	mu    sync.Mutex
	seq   uint64
	chans map[string]uint64
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

// Publish sends a publish made on this node to every peer interested in ch.
// It never blocks on the network: the frame is encoded once and queued on
// each interested peer's link; a full or down link drops and counts. data
// is kept until written; the caller must not modify it afterwards.
func (c *Cluster) Publish(ch string, data []byte) {
	peers := c.table.lookup(ch)
	if len(peers) == 0 {
		return
	}
	f := publishFrame(ch, data, c.name)
	if len(f)-headerLen > c.cfg.MaxFrameSize {
		c.tooLarge.Add(1)
		return
	}
	for _, p := range peers {
		p.enqueuePublish(f)
	}
}

// Interest records that this node gained its first (on) or lost its last
// (!on) local subscriber of ch, and tells every connected peer. Calls must
// come in order per channel; it never blocks.
func (c *Cluster) Interest(ch string, on bool) {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	_, had := c.local.chans[ch]
	if had == on {
		return
	}
	c.local.seq++
	seq := c.local.seq
	t := frameRemove
	if on {
		c.local.chans[ch] = seq
		t = frameAdd
	} else {
		delete(c.local.chans, ch)
	}
	f, err := encodeMsg(t, interestMsg{Ch: ch, Seq: seq})
	if err != nil {
		c.log.Error("encode interest", "err", err)
		return
	}
	for _, p := range c.peerList() {
		if oc := p.out.Load(); oc != nil {
			oc.pushControl(f)
		}
	}
}

// linkUp makes oc p's outbound connection: the snapshot goes first, and
// from then on every Interest call reaches oc too (both under local.mu).
func (c *Cluster) linkUp(p *peer, oc *outConn) error {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	chs := make([]string, 0, len(c.local.chans))
	for ch := range c.local.chans {
		chs = append(chs, ch)
	}
	frames, err := snapshotFrames(chs, c.local.seq, c.cfg.MaxFrameSize)
	if err != nil {
		return err
	}
	if !oc.q.pushAll(frames) {
		return errSnapshotTooLarge
	}
	p.out.Store(oc)
	return nil
}

// InterestReady reports whether every live peer has already acknowledged
// this node's current interest in ch, that is whether AwaitInterest would
// return at once. The hub uses it to ack most subscribes without starting
// a goroutine to wait.
func (c *Cluster) InterestReady(ch string) bool {
	seq := c.interestSeq(ch)
	if seq == 0 {
		return true
	}
	for _, p := range c.peerList() {
		if acked, _, gone := p.ackState(); !gone && acked < seq {
			return false
		}
	}
	return true
}

// interestSeq is the sequence number AwaitInterest waits for: that of the
// add of ch, or of the latest change when ch was removed meanwhile.
func (c *Cluster) interestSeq(ch string) uint64 {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	if seq, ok := c.local.chans[ch]; ok {
		return seq
	}
	return c.local.seq
}

// AwaitInterest blocks until every live peer has acknowledged this node's
// current interest in ch, ctx ends (ctx.Err()), or InterestTimeout passes
// (ErrInterestTimeout, counted). With no peers it returns at once.
func (c *Cluster) AwaitInterest(ctx context.Context, ch string) error {
	seq := c.interestSeq(ch)
	if seq == 0 {
		return nil
	}
	var timeout <-chan time.Time
	for _, p := range c.peerList() {
		for {
			acked, changed, gone := p.ackState()
			if gone || acked >= seq {
				break
			}
			if timeout == nil {
				t := time.NewTimer(c.cfg.InterestTimeout)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return ctx.Err()
			case <-timeout:
				c.interestTimeouts.Add(1)
				c.log.Warn("interest not acknowledged in time", "channel", ch, "peer", p.name)
				return ErrInterestTimeout
			}
		}
	}
	return nil
}
