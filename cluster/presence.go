package cluster

import (
	"sync/atomic"
	"time"

	"github.com/meshcast/meshcast/internal/relay"
)

// Presence replication (docs/presence.md). Each node is the only
// authority on its own clients' presence. It sends its entries to every
// peer on its outbound links: the whole set right after the interest
// snapshot when a link opens, then each change, in order with everything
// else on the link. A change that does not fit the link's queue resets
// the link, like an interest message, and the new link's snapshot
// repairs what was lost. A peer's entries arrive on its link to us and
// go to the hub under the peer's relay.Owner; the hub drops them when the
// peer says bye, and when it is gone (declared dead, or left) once its
// reader has ended, so no call about that stay of it can follow.

// localPresence is this node's own entries: what a link's snapshot
// carries. entries is guarded by Cluster.local.mu, which orders changes
// with the snapshot of a link coming up (linkUp), as it does interest.
type localPresence struct {
	entries map[presenceKey]presenceVal

	owners atomic.Uint64 // the last relay.Owner seq handed out (peer.owner)

	// counters for Stats
	sent, sentBytes         atomic.Uint64 // frames and bytes queued on outbound links (one per peer)
	received, receivedBytes atomic.Uint64
	syncs, drops            atomic.Uint64 // snapshots applied, owners dropped
}

type presenceKey struct{ ch, client string }

type presenceVal struct {
	user string
	info []byte
}

// presenceMsg is one change of the dialer's presence: an entry added, or
// removed (Gone, without Info).
type presenceMsg struct {
	Ch     string `msgpack:"c"`
	Client string `msgpack:"k"`
	User   string `msgpack:"u"`
	Info   []byte `msgpack:"i,omitempty"`
	Gone   bool   `msgpack:"g,omitempty"`
}

// presenceSnapMsg is a chunk of the dialer's whole presence; the entries
// of every chunk up to the one with Done replace what it had before.
type presenceSnapMsg struct {
	Entries []presenceItem `msgpack:"m"`
	Done    bool           `msgpack:"d"`
}

type presenceItem struct {
	_msgpack struct{} `msgpack:",as_array"`
	Ch       string
	Client   string
	User     string
	Info     []byte
}

// presenceIn is what an inbound link's reader keeps of a snapshot in
// progress.
type presenceIn struct {
	incoming []relay.PresenceEntry
	syncing  bool
}

// presenceAdd records a local entry and sends it to every linked peer.
func (c *Cluster) presenceAdd(e relay.PresenceEntry) {
	f, err := encodeMsg(framePresence, presenceMsg{Ch: e.Ch, Client: e.Client, User: e.User, Info: e.Info})
	if err != nil {
		c.log.Error("presence change not encoded", "err", err)
		return
	}
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	if c.pres.entries == nil {
		c.pres.entries = make(map[presenceKey]presenceVal)
	}
	c.pres.entries[presenceKey{e.Ch, e.Client}] = presenceVal{e.User, e.Info}
	c.sendPresenceLocked(f)
}

// presenceRemove takes a local entry back and tells every linked peer.
func (c *Cluster) presenceRemove(ch, client string) {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	k := presenceKey{ch, client}
	v, ok := c.pres.entries[k]
	if !ok {
		return
	}
	delete(c.pres.entries, k)
	f, err := encodeMsg(framePresence, presenceMsg{Ch: ch, Client: client, User: v.user, Gone: true})
	if err != nil {
		c.log.Error("presence change not encoded", "err", err)
		return
	}
	c.sendPresenceLocked(f)
}

// sendPresenceLocked queues f on every linked peer, counting it. Caller
// holds local.mu.
func (c *Cluster) sendPresenceLocked(f []byte) {
	for _, p := range c.peerList() {
		if oc := p.out.Load(); oc != nil {
			oc.pushControl(f)
			c.pres.sent.Add(1)
			c.pres.sentBytes.Add(uint64(len(f)))
		}
	}
}

// withPresenceLocked appends the presence snapshot to the frames a new
// link opens with. Caller holds local.mu.
func (c *Cluster) withPresenceLocked(frames [][]byte) ([][]byte, error) {
	items := make([]presenceItem, 0, len(c.pres.entries))
	for k, v := range c.pres.entries {
		items = append(items, presenceItem{Ch: k.ch, Client: k.client, User: v.user, Info: v.info})
	}
	snap, err := presenceSnapFrames(items, c.cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	for _, f := range snap {
		c.pres.sent.Add(1)
		c.pres.sentBytes.Add(uint64(len(f)))
	}
	return append(frames, snap...), nil
}

// presenceSnapFrames chunks items into frames of about max/2 bytes at
// most; the last has Done set (an empty set is one empty chunk).
func presenceSnapFrames(items []presenceItem, max int) ([][]byte, error) {
	var frames [][]byte
	flush := func(chunk []presenceItem, done bool) error {
		f, err := encodeMsg(framePresenceSnap, presenceSnapMsg{Entries: chunk, Done: done})
		if err == nil {
			frames = append(frames, f)
		}
		return err
	}
	budget := max / 2 // headroom for msgpack overhead
	start, size := 0, 0
	for i, it := range items {
		n := len(it.Ch) + len(it.Client) + len(it.User) + len(it.Info) + 16
		if size+n > budget && i > start {
			if err := flush(items[start:i], false); err != nil {
				return nil, err
			}
			start, size = i, 0
		}
		size += n
	}
	if err := flush(items[start:], true); err != nil {
		return nil, err
	}
	return frames, nil
}

// owner is the relay.Owner of p's entries.
func (p *peer) presenceOwner() relay.Owner { return relay.Owner{Node: p.name, Seq: p.owner} }

// handlePresence applies a presence frame from the peer; ok is false for
// frames that are not presence's.
func (ic *inConn) handlePresence(t frameType, body []byte) (ok bool, err error) {
	c := ic.p.c
	switch t {
	case framePresence:
		var m presenceMsg
		if err := decodeMsg(body, &m); err != nil {
			return true, err
		}
		c.pres.received.Add(1)
		c.pres.receivedBytes.Add(uint64(len(body) + headerLen + 1))
		e := relay.PresenceEntry{Ch: m.Ch, Client: m.Client, User: m.User, Info: m.Info}
		c.recv.PresenceChange(ic.p.presenceOwner(), e, !m.Gone)
		return true, nil
	case framePresenceSnap:
		var m presenceSnapMsg
		if err := decodeMsg(body, &m); err != nil {
			return true, err
		}
		c.pres.received.Add(1)
		c.pres.receivedBytes.Add(uint64(len(body) + headerLen + 1))
		ic.presenceChunk(m)
		return true, nil
	}
	return false, nil
}

// presenceChunk collects a snapshot; its last chunk replaces the peer's
// entries at the hub.
func (ic *inConn) presenceChunk(m presenceSnapMsg) {
	in := &ic.pres
	if !in.syncing {
		in.incoming, in.syncing = make([]relay.PresenceEntry, 0, len(m.Entries)), true
	}
	for _, it := range m.Entries {
		in.incoming = append(in.incoming, relay.PresenceEntry{Ch: it.Ch, Client: it.Client, User: it.User, Info: it.Info})
	}
	if !m.Done {
		return
	}
	entries := in.incoming
	*in = presenceIn{}
	c := ic.p.c
	c.pres.syncs.Add(1)
	c.recv.PresenceSync(ic.p.presenceOwner(), entries)
}

// presenceBye drops the entries of a peer that said goodbye: it is
// leaving, and every change it made came before the bye.
func (ic *inConn) presenceBye() {
	ic.p.c.pres.drops.Add(1)
	ic.p.c.recv.PresenceDrop(ic.p.presenceOwner())
}

// presenceDropDelay is how long the entries of a peer that is gone stay
// before they are dropped. When a partition heals, memberlist merges the
// other side's stale view and may declare a healthy member dead for a
// moment; if it is back and synced within the delay, its new stay's
// snapshot supersedes this one's entries and its users never seem to
// leave. It is well under the second the issue allows past detection.
const presenceDropDelay = 500 * time.Millisecond

// presenceGone drops, after presenceDropDelay, the entries of a peer that
// is gone (declared dead or left) and whose reader has ended: nothing
// more can come from this stay of it. It runs on memberlist's callback or
// on the reader's goroutine, so the hub is called from a goroutine of its
// own. At shutdown nothing is dropped: the hub is going too.
func (c *Cluster) presenceGone(p *peer) {
	if c.ctx.Err() != nil || c.recv == nil {
		return
	}
	o := p.presenceOwner()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTimer(presenceDropDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
		c.pres.drops.Add(1)
		c.recv.PresenceDrop(o)
	}()
}

// localPresenceCount is the number of local entries (Stats).
func (c *Cluster) localPresenceCount() int {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	return len(c.pres.entries)
}

// PresenceStats counts presence replication (Stats.Presence).
type PresenceStats struct {
	LocalEntries  int    `json:"local_entries"` // this node's entries, sent to every peer
	FramesSent    uint64 `json:"frames_sent"`   // changes and snapshot chunks queued, one per peer
	BytesSent     uint64 `json:"bytes_sent"`    // their bytes
	FramesRecv    uint64 `json:"frames_received"`
	BytesRecv     uint64 `json:"bytes_received"`
	Syncs         uint64 `json:"syncs"`          // peers' snapshots applied
	OwnersDropped uint64 `json:"owners_dropped"` // peers' entries dropped (bye, death, leave)
}

func (c *Cluster) presenceStats() PresenceStats {
	s := &c.pres
	return PresenceStats{
		LocalEntries: c.localPresenceCount(),
		FramesSent:   s.sent.Load(), BytesSent: s.sentBytes.Load(),
		FramesRecv: s.received.Load(), BytesRecv: s.receivedBytes.Load(),
		Syncs: s.syncs.Load(), OwnersDropped: s.drops.Load(),
	}
}

// The relay.PresenceRelay methods.

func (r clusterRelay) PresenceAdd(e relay.PresenceEntry) { r.c.presenceAdd(e) }
func (r clusterRelay) PresenceRemove(ch, client string)  { r.c.presenceRemove(ch, client) }
