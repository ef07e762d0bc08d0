package cluster

import (
	"sync"
	"time"
)

// incident tracks, for one peer, whether this node may have missed
// publishes from it, so that local subscribers are told (Receiver.Gap)
// once per incident: when it ends, or after gapDelay if it drags on (and
// then once more when it ends). An incident starts when the peer's link to
// us breaks without a bye, or the peer is alive but not linked for longer
// than gapDelay; it ends when a new link from the peer is synced, or when
// the peer is declared dead or leaves.
//
// Gaps are for all of this node's channels: a peer can only have sent us
// channels we wanted, and when a link breaks we cannot know which of them
// it was about to send. Drops the peer itself counted (a full queue) come
// with their channels in a gap frame instead (peer.noteDrop).
type incident struct {
	inUp          bool      // the peer's link to us is up and its snapshot applied
	dirty         bool      // publishes from it may have been lost since the last gap
	signalled     bool      // an early gap went out for the current outage
	unsyncedSince time.Time // when its link to us went (or was not yet) up; zero while up
	syncedEpoch   uint64    // the peer process we last synced with; 0 after it died
	bye           bool      // its last link ended with a bye: it is leaving, nothing is lost
}

// gapDelay is how long an outage may last before subscribers hear of it
// even though it is not over: a link that stays down must not keep a
// loss silent.
const gapDelay = 2 * time.Second

// linkDown: the peer's link to us ended, cleanly (after a bye) or not.
func (i *incident) linkDown(now time.Time, clean bool) {
	i.inUp = false
	if i.unsyncedSince.IsZero() {
		i.unsyncedSince = now
	}
	i.bye = clean
	if !clean {
		i.dirty = true
	}
}

// synced: a new link from the peer applied its snapshot. A gap is due if
// the previous link broke, or if the peer, not fresh, is a process we had
// not been in sync with (back from dead, restarted, or met for the first
// time after it had served on its own).
func (i *incident) synced(epoch uint64, fresh bool) (gap bool) {
	gap = i.dirty || (!fresh && i.syncedEpoch != epoch)
	*i = incident{inUp: true, syncedEpoch: epoch}
	return gap
}

// died: the peer was declared dead; anything it had in flight is lost.
func (i *incident) died() (gap bool) {
	gap = i.dirty || i.inUp
	*i = incident{}
	return gap
}

// left: the peer left gracefully; only a link that broke before its bye
// lost anything.
func (i *incident) left() (gap bool) {
	gap = i.dirty
	*i = incident{}
	return gap
}

// overdue reports, once per outage, that the peer has been unlinked for
// gapDelay: from then on it may have published without reaching us.
func (i *incident) overdue(now time.Time) bool {
	if i.inUp || i.signalled || i.bye || i.unsyncedSince.IsZero() || now.Sub(i.unsyncedSince) < gapDelay {
		return false
	}
	i.signalled, i.dirty = true, true
	return true
}

// gapQueue holds gaps decided on goroutines that must not do the fan-out
// (memberlist's callbacks); the maintenance loop emits them.
type gapQueue struct {
	mu      sync.Mutex
	pending []gapNote
}

type gapNote struct {
	peer, why string
	chs       []string // nil: every local channel
}

func (q *gapQueue) push(peer, why string, chs []string) {
	q.mu.Lock()
	q.pending = append(q.pending, gapNote{peer, why, chs})
	q.mu.Unlock()
}

func (q *gapQueue) take() []gapNote {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = nil
	return out
}

// emitGap tells the hub that publishes from peer on chs (nil: every channel
// this node wants) may have been missed. It runs without cluster locks.
func (c *Cluster) emitGap(peer, why string, chs []string) {
	all := chs == nil
	if all {
		chs = c.localChannels()
	}
	if len(chs) == 0 || c.recv == nil {
		return
	}
	c.stand.gapIncidents.Add(1)
	c.stand.gapChannels.Add(uint64(len(chs)))
	c.log.Info("may have missed publishes; telling subscribers (gap)", "peer", peer, "why", why,
		"channels", len(chs), "all_channels", all)
	c.recv.Gap(chs)
}

// inboundSynced runs on a link's reader goroutine when the peer's snapshot
// is applied, before any publish that follows it, so a gap reaches
// subscribers ahead of what the new link delivers.
func (c *Cluster) inboundSynced(p *peer, epoch uint64, fresh bool) {
	c.mu.Lock()
	m := c.members[p.name]
	gap := m != nil && c.peers[p.name] == p && m.in.synced(epoch, fresh)
	c.mu.Unlock()
	signal(c.linkEvent)
	c.stand.changed()
	if gap {
		c.emitGap(p.name, "its link to us was interrupted, or it served without us", nil)
	}
}

// inboundDown runs when a link from p ends. A peer that is gone already had
// its incident settled by peerGone.
func (c *Cluster) inboundDown(p *peer, clean bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.members[p.name]; m != nil && c.peers[p.name] == p {
		m.in.linkDown(time.Now(), clean)
		if clean {
			m.leaving = true // a bye comes only from a node that is leaving
		}
	}
}

// checkOverdue emits the early gaps of outages older than gapDelay.
func (c *Cluster) checkOverdue(now time.Time) {
	var late []string
	c.mu.Lock()
	for name, m := range c.members {
		if m.state == stateAlive && m.in.overdue(now) {
			late = append(late, name)
		}
	}
	c.mu.Unlock()
	for _, name := range late {
		c.emitGap(name, "no link from it for "+gapDelay.String()+" while it is alive", nil)
	}
}
