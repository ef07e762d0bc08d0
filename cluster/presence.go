package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshcast/meshcast/internal/relay"
)

// Presence replication (docs/presence.md). Each node is the only
// authority on its own clients' presence, and sends its entries of a
// channel only to the peers that want the channel as a presence channel
// (their interest add carries a presence flag):
//
//   - When a peer comes to want ch (its add, or its interest snapshot),
//     we queue on our link to it our entries of ch, tagged with the seq of
//     that interest message; later changes of ch follow on the same link,
//     so order holds. When our link to it opens, it starts with our
//     entries of every channel it wants (a full set).
//   - Both happen under local.mu, as does every change we send, so a
//     change is either in a set or after it on the link.
//   - The peer applies a set of ch only if it still wants ch with an add no
//     later than the tag, and a change of ch only once it has applied such
//     a set: anything of an earlier want (in flight when it unsubscribed
//     and subscribed again) is ignored, and the new set replaces it. It
//     checks and applies under its own local.mu, which its unsubscribe
//     takes too, so no entry of a channel it no longer wants survives.
//   - A sub of a presence channel is confirmed only once every live peer
//     has sent its set for that add (confirmedOn): the interest ack comes
//     back on our own link, the set on the peer's, and they may cross.
//
// A change or set that does not fit a link's queue resets the link, like
// an interest message, and the new link's full set repairs what was lost.
// A node that does not want ch holds nothing of it: queries there ask
// every live peer for its own entries (presenceFetch).

// localPresence is this node's own entries: what sets and answers carry.
// entries and count are guarded by Cluster.local.mu.
type localPresence struct {
	entries map[string]map[string]presenceVal // channel -> client -> entry
	count   int

	owners atomic.Uint64 // the last relay.Owner seq handed out (peer.owner)

	queries pending[*presenceAsk] // the queries this node sent and waits answers for

	// counters for Stats
	sent, sentBytes         atomic.Uint64 // frames and bytes queued on outbound links (one per interested peer)
	received, receivedBytes atomic.Uint64
	syncs, drops            atomic.Uint64 // sets applied, owners dropped
	ignored                 atomic.Uint64 // changes and sets of channels no longer (or not yet) wanted
	asked, askFailed        atomic.Uint64 // queries this node sent to its peers, and those not answered whole
	answered                atomic.Uint64 // queries of peers this node answered
}

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

// presenceChansMsg is a chunk of a set: the dialer's entries of some
// channels, each tagged with the acceptor's interest seq it answers. A
// channel's entries may span chunks; the set is applied at Done. Full:
// sent when the link opened, it holds every channel the dialer knows the
// acceptor wants.
type presenceChansMsg struct {
	Chans []presenceSection `msgpack:"c"`
	Done  bool              `msgpack:"d"`
	Full  bool              `msgpack:"f,omitempty"`
}

type presenceSection struct {
	_msgpack struct{} `msgpack:",as_array"`
	Ch       string
	Seq      uint64
	Entries  []presenceItem
}

type presenceItem struct {
	_msgpack struct{} `msgpack:",as_array"`
	Client   string
	User     string
	Info     []byte
}

// presenceQueryMsg asks the acceptor for its own entries of Ch.
type presenceQueryMsg struct {
	ID uint64 `msgpack:"i"`
	Ch string `msgpack:"c"`
}

// presenceAnswerMsg is a chunk of the answer to a query; Done on the last.
type presenceAnswerMsg struct {
	ID      uint64         `msgpack:"i"`
	Entries []presenceItem `msgpack:"m"`
	Done    bool           `msgpack:"d"`
}

// presenceIn is what an inbound link's reader keeps of a set in progress.
type presenceIn struct {
	secs    []presenceSection
	syncing bool
	// wantPres collects the presence channels of an interest snapshot in
	// progress (the peer's wants, as the acceptor of its link).
	wantPres map[string]struct{}
}

// presenceAdd records a local entry and sends it to the peers that want
// its channel.
func (c *Cluster) presenceAdd(e relay.PresenceEntry) {
	f, err := encodeMsg(framePresence, presenceMsg{Ch: e.Ch, Client: e.Client, User: e.User, Info: e.Info})
	if err != nil {
		c.log.Error("presence change not encoded", "err", err)
		return
	}
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	if c.pres.entries == nil {
		c.pres.entries = make(map[string]map[string]presenceVal)
	}
	m := c.pres.entries[e.Ch]
	if m == nil {
		m = make(map[string]presenceVal)
		c.pres.entries[e.Ch] = m
	}
	if _, ok := m[e.Client]; !ok {
		c.pres.count++
	}
	m[e.Client] = presenceVal{e.User, e.Info}
	c.sendPresenceLocked(e.Ch, f)
}

// presenceRemove takes a local entry back and tells the peers that want
// its channel.
func (c *Cluster) presenceRemove(ch, client string) {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	m := c.pres.entries[ch]
	v, ok := m[client]
	if !ok {
		return
	}
	delete(m, client)
	if len(m) == 0 {
		delete(c.pres.entries, ch)
	}
	c.pres.count--
	f, err := encodeMsg(framePresence, presenceMsg{Ch: ch, Client: client, User: v.user, Gone: true})
	if err != nil {
		c.log.Error("presence change not encoded", "err", err)
		return
	}
	c.sendPresenceLocked(ch, f)
}

// sendPresenceLocked queues f, a change of ch, on the link of every peer
// that wants ch. Caller holds local.mu.
func (c *Cluster) sendPresenceLocked(ch string, f []byte) {
	for _, p := range c.peerList() {
		if _, ok := p.presWants[ch]; !ok {
			continue
		}
		if oc := p.out.Load(); oc != nil {
			oc.pushControl(f)
			c.countPresenceSent(p, f)
		}
	}
}

func (c *Cluster) countPresenceSent(p *peer, fs ...[]byte) {
	for _, f := range fs {
		c.pres.sent.Add(1)
		c.pres.sentBytes.Add(uint64(len(f)))
		p.presSent.Add(1)
		p.presSentBytes.Add(uint64(len(f)))
	}
}

// sectionsLocked are this node's entries of chs, each tagged with its seq
// in tags. Caller holds local.mu.
func (c *Cluster) sectionsLocked(tags map[string]uint64) []presenceSection {
	secs := make([]presenceSection, 0, len(tags))
	for ch, seq := range tags {
		m := c.pres.entries[ch]
		items := make([]presenceItem, 0, len(m))
		for client, v := range m {
			items = append(items, presenceItem{Client: client, User: v.user, Info: v.info})
		}
		secs = append(secs, presenceSection{Ch: ch, Seq: seq, Entries: items})
	}
	return secs
}

// withPresenceLocked appends to the frames a new link to p opens with our
// entries of every channel p wants (a full set). Caller holds local.mu.
func (c *Cluster) withPresenceLocked(p *peer, frames [][]byte) ([][]byte, error) {
	set, err := presenceChansFrames(c.sectionsLocked(p.presWants), true, c.cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	c.countPresenceSent(p, set...)
	return append(frames, set...), nil
}

// presenceWanted records, as the acceptor of p's link, that p wants the
// presence channels of tags (each with the seq of the interest message
// that says so), and queues our entries of them on our link to p. When
// that link is down, the full set it opens with carries them.
func (ic *inConn) presenceWanted(tags map[string]uint64) {
	p, c := ic.p, ic.p.c
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	for ch, seq := range tags {
		p.presWants[ch] = seq
	}
	oc := p.out.Load()
	if oc == nil {
		return
	}
	set, err := presenceChansFrames(c.sectionsLocked(tags), false, c.cfg.MaxFrameSize)
	if err != nil {
		c.log.Error("presence set not encoded; resetting link", "peer", p.name, "err", err)
		oc.close()
		return
	}
	oc.pushControl(set...)
	c.countPresenceSent(p, set...)
}

// presenceUnwanted records that p no longer wants ch (or, with keep, any
// presence channel not in keep): nothing of it goes to p any more.
func (ic *inConn) presenceUnwanted(ch string, keep map[string]struct{}) {
	p, c := ic.p, ic.p.c
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	if keep == nil {
		delete(p.presWants, ch)
		return
	}
	for ch := range p.presWants {
		if _, ok := keep[ch]; !ok {
			delete(p.presWants, ch)
		}
	}
}

// presenceChansFrames chunks secs into frames of about max/2 bytes at
// most; the last has Done set (an empty set is one empty chunk).
func presenceChansFrames(secs []presenceSection, full bool, max int) ([][]byte, error) {
	var frames [][]byte
	var chunk []presenceSection
	budget := max / 2 // headroom for msgpack overhead
	size := 0
	flush := func(done bool) error {
		f, err := encodeMsg(framePresenceChans, presenceChansMsg{Chans: chunk, Done: done, Full: full})
		if err != nil {
			return err
		}
		frames = append(frames, f)
		chunk, size = nil, 0
		return nil
	}
	for _, sec := range secs {
		head := len(sec.Ch) + 16
		if size+head > budget && len(chunk) > 0 {
			if err := flush(false); err != nil {
				return nil, err
			}
		}
		cur := presenceSection{Ch: sec.Ch, Seq: sec.Seq}
		size += head
		for _, it := range sec.Entries {
			n := len(it.Client) + len(it.User) + len(it.Info) + 8
			if size+n > budget && (len(cur.Entries) > 0 || len(chunk) > 0) {
				chunk = append(chunk, cur)
				if err := flush(false); err != nil {
					return nil, err
				}
				cur = presenceSection{Ch: sec.Ch, Seq: sec.Seq}
				size = head
			}
			cur.Entries = append(cur.Entries, it)
			size += n
		}
		chunk = append(chunk, cur)
	}
	if err := flush(true); err != nil {
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
		ic.presenceChange(m)
		return true, nil
	case framePresenceChans:
		var m presenceChansMsg
		if err := decodeMsg(body, &m); err != nil {
			return true, err
		}
		c.pres.received.Add(1)
		c.pres.receivedBytes.Add(uint64(len(body) + headerLen + 1))
		ic.presenceChunk(m)
		return true, nil
	case framePresenceQuery:
		var m presenceQueryMsg
		if err := decodeMsg(body, &m); err != nil {
			return true, err
		}
		for _, f := range c.servePresenceQuery(m) {
			ic.answer(f)
		}
		return true, nil
	}
	return false, nil
}

// presenceChange applies a change of the peer's, if this node wants its
// channel and holds the peer's set of it for the add in force.
func (ic *inConn) presenceChange(m presenceMsg) {
	p, c := ic.p, ic.p.c
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	lc := c.local.chans[m.Ch]
	if lc == nil || !lc.presence || p.presSynced[m.Ch] < lc.seq {
		c.pres.ignored.Add(1) // of an earlier want; the set of this one replaces it
		return
	}
	e := relay.PresenceEntry{Ch: m.Ch, Client: m.Client, User: m.User, Info: m.Info}
	c.recv.PresenceChange(p.presenceOwner(), e, !m.Gone, !lc.settled)
}

// presenceChunk collects a set; at its last chunk the channels this node
// still wants, with an add no later than their tag, replace the peer's
// entries of them at the hub.
func (ic *inConn) presenceChunk(m presenceChansMsg) {
	in := &ic.pres
	if !in.syncing {
		in.secs, in.syncing = nil, true
	}
	for _, sec := range m.Chans {
		if n := len(in.secs); n > 0 && in.secs[n-1].Ch == sec.Ch && in.secs[n-1].Seq == sec.Seq {
			in.secs[n-1].Entries = append(in.secs[n-1].Entries, sec.Entries...)
			continue
		}
		in.secs = append(in.secs, sec)
	}
	if !m.Done {
		return
	}
	secs := in.secs
	in.secs, in.syncing = nil, false
	ic.applyPresenceSet(secs, m.Full)
}

func (ic *inConn) applyPresenceSet(secs []presenceSection, full bool) {
	p, c := ic.p, ic.p.c
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	chans := make([]relay.PresenceChannel, 0, len(secs))
	accepted := make(map[string]struct{}, len(secs))
	for _, sec := range secs {
		lc := c.local.chans[sec.Ch]
		if _, dup := accepted[sec.Ch]; dup || lc == nil || !lc.presence || sec.Seq < lc.seq {
			c.pres.ignored.Add(1)
			continue
		}
		accepted[sec.Ch] = struct{}{}
		p.presSynced[sec.Ch] = sec.Seq
		entries := make([]relay.PresenceEntry, len(sec.Entries))
		for i, it := range sec.Entries {
			entries[i] = relay.PresenceEntry{Ch: sec.Ch, Client: it.Client, User: it.User, Info: it.Info}
		}
		chans = append(chans, relay.PresenceChannel{Ch: sec.Ch, Entries: entries, Quiet: !lc.settled})
	}
	if full {
		for ch := range p.presSynced {
			if _, ok := accepted[ch]; !ok {
				delete(p.presSynced, ch) // it does not know we want ch yet: wait for its set
			}
		}
	}
	c.pres.syncs.Add(1)
	if full || len(chans) > 0 {
		c.recv.PresenceSync(p.presenceOwner(), full, chans)
	}
	p.wake() // subscribes waiting for this set
}

// presenceSynced reports whether p has sent its set of ch for t, when t
// is the add in force of a presence channel (otherwise there is nothing
// to wait for).
func (c *Cluster) presenceSynced(p *peer, ch string, t relay.Ticket) bool {
	if ch == "" {
		return true
	}
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	lc := c.local.chans[ch]
	if lc == nil || !lc.presence || lc.seq != uint64(t) {
		return true
	}
	return p.presSynced[ch] >= lc.seq
}

// settle marks the add t of ch settled: a subscribe of it is acked, so
// from now on peers' changes of ch are events.
func (c *Cluster) settle(ch string, t relay.Ticket) {
	if ch == "" {
		return
	}
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	if lc := c.local.chans[ch]; lc != nil && lc.seq == uint64(t) {
		lc.settled = true
	}
}

// presenceView reports whether this node holds the view of ch its
// subscribers were promised (relay.PresenceRelay.PresenceView): it wants
// ch and a subscribe of it was settled, so every live peer's set had come
// (or the wait timed out, and its subscribers got a gap). A peer that
// joins later, or relinks, brings its set as it did for the subscribers:
// reads here see what they see.
func (c *Cluster) presenceView(ch string) bool {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	lc := c.local.chans[ch]
	return lc != nil && lc.presence && lc.settled
}

// presenceForgetLocked drops every peer's entries of ch, which this node
// no longer wants: they would go stale. Caller holds local.mu, so no set
// or change of ch is applied in between.
func (c *Cluster) presenceForgetLocked(ch string) {
	for _, p := range c.peerList() {
		delete(p.presSynced, ch)
	}
	if c.recv != nil {
		c.recv.PresenceForget(ch)
	}
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
// set supersedes this one's entries and its users never seem to leave.
// It is well under the second the issue allows past detection.
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

// Queries of a channel this node does not want.

// ErrPresenceUnanswered: a peer could not be asked for its entries of a
// channel, or did not answer in time, so the view would miss its members.
var ErrPresenceUnanswered = errors.New("cluster: no presence answer from every node")

type presenceAsk struct {
	id      uint64
	ch      string
	entries []relay.PresenceEntry
	done    chan struct{} // closed at the answer's last chunk
}

// presenceFetch asks every live peer for its own entries of ch and waits
// for all of them, at most InterestTimeout. A peer whose process is known
// gone (a dial refused) is not asked: its users go once memberlist
// declares it dead. Any other peer without a link, or that does not
// answer in time, fails the query, naming it.
func (c *Cluster) presenceFetch(ctx context.Context, ch string) ([]relay.PresenceEntry, error) {
	c.pres.asked.Add(1)
	asks := make(map[string]*presenceAsk)
	qs := &c.pres.queries
	defer func() {
		for _, a := range asks {
			qs.close(a.id)
		}
	}()
	var missing []string
	for _, p := range c.peerList() {
		if p.crashed.Load() {
			continue
		}
		oc := p.out.Load()
		if oc == nil {
			missing = append(missing, p.name+" (no link)")
			continue
		}
		_, a := qs.open(func(id uint64) *presenceAsk {
			return &presenceAsk{id: id, ch: ch, done: make(chan struct{})}
		})
		f, err := encodeMsg(framePresenceQuery, presenceQueryMsg{ID: a.id, Ch: ch})
		if err != nil || !oc.q.pushAll([][]byte{f}) {
			qs.close(a.id)
			missing = append(missing, p.name+" (link busy)")
			continue
		}
		asks[p.name] = a
	}
	var entries []relay.PresenceEntry
	if len(missing) == 0 {
		timer := time.NewTimer(c.cfg.InterestTimeout)
		defer timer.Stop()
		expired := false
		for _, name := range slices.Sorted(maps.Keys(asks)) {
			a := asks[name]
			if !expired {
				select {
				case <-a.done:
				case <-timer.C:
					expired = true
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			select {
			case <-a.done:
				entries = append(entries, a.entries...)
			default:
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		c.pres.askFailed.Add(1)
		slices.Sort(missing)
		return nil, fmt.Errorf("%w: %s", ErrPresenceUnanswered, strings.Join(missing, ", "))
	}
	return entries, nil
}

// presenceAnswered adds a chunk of a peer's answer to the query that
// asked.
func (c *Cluster) presenceAnswered(m *presenceAnswerMsg) {
	c.pres.queries.answer(m.ID, func(a *presenceAsk) bool {
		for _, it := range m.Entries {
			a.entries = append(a.entries, relay.PresenceEntry{Ch: a.ch, Client: it.Client, User: it.User, Info: it.Info})
		}
		if m.Done {
			close(a.done)
		}
		return m.Done
	})
}

// servePresenceQuery answers a peer's query with this node's own entries
// of the channel, in chunks.
func (c *Cluster) servePresenceQuery(m presenceQueryMsg) [][]byte {
	c.pres.answered.Add(1)
	c.local.mu.Lock()
	src := c.pres.entries[m.Ch]
	items := make([]presenceItem, 0, len(src))
	for client, v := range src {
		items = append(items, presenceItem{Client: client, User: v.user, Info: v.info})
	}
	c.local.mu.Unlock()
	var frames [][]byte
	budget := c.cfg.MaxFrameSize / 2
	start, size := 0, 0
	flush := func(end int, done bool) {
		f, err := encodeMsg(framePresenceAnswer, presenceAnswerMsg{ID: m.ID, Entries: items[start:end], Done: done})
		if err != nil {
			// Cannot happen (strings and bytes); if it did, the asker
			// times out and names this node.
			c.log.Error("presence answer not encoded", "err", err)
			return
		}
		frames = append(frames, f)
	}
	for i, it := range items {
		n := len(it.Client) + len(it.User) + len(it.Info) + 8
		if size+n > budget && i > start {
			flush(i, false)
			start, size = i, 0
		}
		size += n
	}
	flush(len(items), true)
	return frames
}

// localPresenceCount is the number of local entries (Stats).
func (c *Cluster) localPresenceCount() int {
	c.local.mu.Lock()
	defer c.local.mu.Unlock()
	return c.pres.count
}

// PresenceStats counts presence replication (Stats.Presence).
type PresenceStats struct {
	LocalEntries  int    `json:"local_entries"` // this node's entries
	FramesSent    uint64 `json:"frames_sent"`   // changes and set chunks queued, one per interested peer
	BytesSent     uint64 `json:"bytes_sent"`    // their bytes
	FramesRecv    uint64 `json:"frames_received"`
	BytesRecv     uint64 `json:"bytes_received"`
	Syncs         uint64 `json:"syncs"`          // peers' sets applied
	OwnersDropped uint64 `json:"owners_dropped"` // peers' entries dropped (bye, death, leave)
	// Ignored: changes and set channels of a want that ended (in flight
	// when this node unsubscribed), replaced by the next want's set.
	Ignored uint64 `json:"ignored"`
	// Queries: presence reads of a channel this node does not want, which
	// asked every peer; QueriesFailed those refused because a peer did not
	// answer; QueriesAnswered the peers' queries this node answered.
	Queries         uint64 `json:"queries"`
	QueriesFailed   uint64 `json:"queries_failed"`
	QueriesAnswered uint64 `json:"queries_answered"`
}

func (c *Cluster) presenceStats() PresenceStats {
	s := &c.pres
	return PresenceStats{
		LocalEntries: c.localPresenceCount(),
		FramesSent:   s.sent.Load(), BytesSent: s.sentBytes.Load(),
		FramesRecv: s.received.Load(), BytesRecv: s.receivedBytes.Load(),
		Syncs: s.syncs.Load(), OwnersDropped: s.drops.Load(), Ignored: s.ignored.Load(),
		Queries: s.asked.Load(), QueriesFailed: s.askFailed.Load(), QueriesAnswered: s.answered.Load(),
	}
}

// The relay.PresenceRelay methods.

func (r clusterRelay) PresenceAdd(e relay.PresenceEntry) { r.c.presenceAdd(e) }
func (r clusterRelay) PresenceRemove(ch, client string)  { r.c.presenceRemove(ch, client) }
func (r clusterRelay) PresenceView(ch string) bool       { return r.c.presenceView(ch) }
func (r clusterRelay) PresenceFetch(ctx context.Context, ch string) ([]relay.PresenceEntry, error) {
	return r.c.presenceFetch(ctx, ch)
}
