package hub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

// Channels with history (Namespace.History): every publish is numbered in
// its node's stream, stored by every node that delivers it (and by enough
// others to survive a node's death), and sent with a position (pos) a
// client can resume from on any node. See docs/history.md.

// fetchBudget bounds the data of one fetch answer; a channel's whole
// window comes in pages.
const fetchBudget = 256 << 10

// refillTimeout bounds a node's catch-up of one channel after a gap.
const refillTimeout = 10 * time.Second

// chanState is a channel with history as this node follows it. Its mutex
// orders everything delivered on the channel here (local publishes, peers'
// publishes, refills, the point where a recovering subscriber goes live),
// so that each stream reaches every local subscriber in order, is stored
// in that order, and a position means the same to all of them.
//
// Lock order: hist.mu, then chanState.mu, then session.mu, the registry's
// lock and the cluster's.
type chanState struct {
	name  string
	place uint32

	// fetchMu serializes the recoveries that must ask the peers: the first
	// one fetches, and usually leaves the node able to serve the others
	// from its own store. Taken before mu.
	fetchMu sync.Mutex

	mu     sync.Mutex
	lim    history.Limits
	users  int    // local subscribers: clients (live or recovering) and in-process
	stream uint64 // this node's stream on the channel (fresh for each state)
	seq    uint64 // its last number
	front  history.Frontier
	ftime  int64 // newest origin time delivered
	// since is when this node began to have every publish of the channel
	// (Unix ms): when its first local subscriber came, or when a refill
	// could not fill a hole. MaxInt64 while it has no subscriber.
	since  int64
	held   []item // peers' publishes waiting for a refill to fill the hole before them
	busy   bool   // a refill runs
	again  bool   // the cluster reported a possible loss during the refill's fetch: fetch once more
	used   int64  // Unix ms of the last use, for forgetting idle states
	warned bool   // the config mismatch was logged
}

// item is a publish to deliver: a stored message and the client it skips,
// and whether it came from a peer's fetch answer (rather than live).
type item struct {
	history.Msg
	except  string
	fetched bool
}

// histState holds the channels with history this node follows.
type histState struct {
	mu    sync.Mutex
	chans map[string]*chanState
}

// limits returns ch's history limits, and whether ch has history.
func (h *Hub) limits(ch string) (history.Limits, bool) {
	if isReserved(ch) {
		return history.Limits{}, false
	}
	ns := h.namespace(ch)
	if ns.History <= 0 {
		return history.Limits{}, false
	}
	return history.Limits{Max: ns.History, TTL: time.Duration(ns.HistoryTTL)}, true
}

// chanState returns ch's state, creating it.
func (h *Hub) chanState(ch string, lim history.Limits) *chanState {
	h.hist.mu.Lock()
	defer h.hist.mu.Unlock()
	cs := h.hist.chans[ch]
	if cs == nil {
		cs = &chanState{name: ch, place: history.Place(ch), since: math.MaxInt64, stream: newStreamID(), lim: lim, used: nowMs()}
		h.hist.chans[ch] = cs
	}
	return cs
}

// touchLocked records a use of cs with ch's current limits (the config
// may have changed). Caller holds cs.mu.
func (cs *chanState) touchLocked(lim history.Limits) {
	cs.lim, cs.used = lim, nowMs()
}

func newStreamID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0
}

func nowMs() int64 { return time.Now().UnixMilli() }

// histRef counts a local subscriber of ch in (+1) or out (-1), if ch has
// history. The first one starts the node's coverage afresh: what it
// delivered before, while nobody here listened, may have holes that are
// no subscriber's business. Called with no hub lock held.
func (h *Hub) histRef(ch string, delta int) {
	lim, ok := h.limits(ch)
	if !ok {
		return
	}
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.touchLocked(lim)
	cs.users += delta
	switch {
	case cs.users == 1 && delta > 0:
		cs.front, cs.ftime, cs.since = nil, 0, nowMs()
	case cs.users <= 0:
		cs.users, cs.since = 0, math.MaxInt64
	}
}

// startPos is the position of a subscription to ch that begins now, for a
// channel with history: every stream the node delivered or stores, up to
// its last seq here (all of it came before the subscription), and now as
// its time, so that a stream it does not name counts from now (less the
// clock skew). Read once the subscriber is in place, so that whatever
// reaches it later comes after this position, and a sub with since from
// it recovers what was published while it was away.
func (h *Hub) startPos(ch string) (string, bool) {
	lim, ok := h.limits(ch)
	if !ok {
		return "", false
	}
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	marks := cs.front
	for _, sp := range h.store.Spans(ch) {
		marks = marks.With(sp.Stream, sp.Last)
	}
	return history.EncodePos(cs.place, history.Pos{Marks: marks, Time: max(cs.ftime, nowMs())}), true
}

// publishStamped publishes on a channel with history: numbered in this
// node's stream, stored, delivered with its position, and sent to the
// peers that store it; stored learns when enough of them did.
func (h *Hub) publishStamped(ch string, lim history.Limits, data []byte, except string, stored func(error)) {
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.touchLocked(lim)
	cs.seq++
	st := relay.Stamp{Stream: cs.stream, Seq: cs.seq, Time: nowMs()}
	kept := h.deliverLocked(cs, history.Msg{Stream: st.Stream, Seq: st.Seq, Time: st.Time, Data: data}, except, &h.metrics.deliveries)
	h.relay.Publish(ch, kept, except, &st, stored)
}

// deliverLocked stores m, advances the channel's frontier, and queues m
// with its position to every local subscriber but except, counting them
// in count. It returns the data as kept in the frame (never modified, so
// peers may keep it). Caller holds cs.mu.
func (h *Hub) deliverLocked(cs *chanState, m history.Msg, except string, count *atomic.Uint64) []byte {
	cs.front = cs.front.With(m.Stream, m.Seq)
	cs.ftime = max(cs.ftime, m.Time)
	pos := history.EncodePos(cs.place, history.Pos{Marks: cs.front, Time: cs.ftime})
	frame, kept := msgFrame(cs.name, m.Data, pos)
	// The store gets its own copy: a slice of the frame would keep the
	// whole frame (header, channel, position) alive for as long as the
	// message is in history.
	m.Data = slices.Clone(kept)
	h.store.Append(cs.name, cs.lim, m)
	count.Add(h.fanOut(cs.name, frame, kept, except, pos))
	return kept
}

// deliverStamped takes a peer's publish on a channel with history: in
// order it is delivered, a repeat is dropped, and one after a hole waits
// for a refill that fetches the missing ones from the peers first.
func (h *Hub) deliverStamped(ch string, data []byte, except string, st relay.Stamp) {
	h.metrics.remoteDeliveries.Add(1)
	lim, ok := h.limits(ch)
	if !ok {
		// A peer has history on ch and this node does not: the namespace
		// config differs between nodes. Keep it anyway (the peer counts on
		// this copy), with a default window.
		lim = history.Limits{Max: 1000}
	}
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.touchLocked(lim)
	if !ok && !cs.warned {
		cs.warned = true
		h.log.Warn("a peer published with history on a channel without history here: is the namespace config the same on every node?",
			slog.String("channel", ch))
	}
	m := history.Msg{Stream: st.Stream, Seq: st.Seq, Time: st.Time, Data: data}
	last := cs.front.Get(st.Stream)
	switch {
	case st.Seq <= last:
		return // had it (a refill was faster)
	case cs.busy:
		m.Data = slices.Clone(data)
		cs.held = append(cs.held, item{Msg: m, except: except})
	case cs.users > 0 && last != 0 && st.Seq > last+1:
		// A hole before it: fetch what is missing first. (A node without
		// subscribers only keeps copies: nobody was promised anything.)
		m.Data = slices.Clone(data)
		cs.held = append(cs.held, item{Msg: m, except: except})
		h.startRefillLocked(cs)
	default:
		h.deliverLocked(cs, m, except, &h.metrics.peerDeliveries)
	}
}

// startRefillLocked starts a node-level catch-up of cs; if one runs, it
// fetches once more when done with what it has (what prompted this call
// may have been lost after the peers answered it). Caller holds cs.mu.
func (h *Hub) startRefillLocked(cs *chanState) {
	if cs.busy {
		cs.again = true
		return
	}
	if h.closed.Load() {
		return
	}
	cs.busy = true
	h.wg.Add(1)
	go h.refillChannel(cs)
}

// refill is what the cluster's gaps become on channels with history: the
// node fetches what it may have missed instead of telling its subscribers.
// It returns the channels without history, which get gap frames now.
func (h *Hub) refill(chs []string) []string {
	var plain []string
	for _, ch := range chs {
		if _, ok := h.limits(ch); !ok {
			plain = append(plain, ch)
			continue
		}
		h.hist.mu.Lock()
		cs := h.hist.chans[ch]
		h.hist.mu.Unlock()
		if cs == nil {
			continue
		}
		cs.mu.Lock()
		if cs.users > 0 {
			h.startRefillLocked(cs)
		}
		cs.mu.Unlock()
	}
	return plain
}

// maxRefillRounds bounds the fetches of one refill: a round is followed
// by another while the cluster reports more possible losses, or while a
// live publish waits behind a hole the peers' answers did not fill. The
// rounds are spaced (refillPause), since the peer that holds what is
// missing is often the one whose link is coming back up: rounds back to
// back would all miss it and end in a gap.
const maxRefillRounds = 8

// refillPause is the wait before round (2, 3, ...): 50 ms doubling to
// 1 s, about 3.5 s over all rounds, within refillTimeout.
func refillPause(round int) time.Duration {
	return min(50*time.Millisecond<<(round-2), time.Second)
}

// refillChannel fetches from the peers what this node lacks of cs after
// its frontier and delivers it, with what was held meanwhile, in order. A
// hole nobody can fill becomes a gap frame where it is.
func (h *Hub) refillChannel(cs *chanState) {
	defer h.wg.Done()
	ctx, cancel := context.WithTimeout(h.ctx, refillTimeout)
	defer cancel()
	for round := 1; ; round++ {
		if round > 1 {
			t := time.NewTimer(refillPause(round))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		cs.mu.Lock()
		ask := slices.Clone(cs.front)
		cs.again = false
		cs.mu.Unlock()
		msgs, spans, ok := h.fetchAll(ctx, cs.name, ask)
		if h.refillRound(cs, ask, msgs, spans, ok, round == maxRefillRounds || ctx.Err() != nil) {
			return
		}
	}
}

// refillRound delivers what one round fetched, with what was held
// meanwhile, and reports whether the refill is over. Before the last
// round, a live publish after a hole waits (with the rest of its stream)
// for another round: what is missing may have been published after the
// peers answered. A fetched one after a hole does not: the peers that
// answered hold it and not what comes before it.
func (h *Hub) refillRound(cs *chanState, ask history.Frontier, msgs []history.Msg, spans []history.Span, ok, last bool) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	items := make([]item, 0, len(msgs)+len(cs.held))
	for _, m := range msgs {
		items = append(items, item{Msg: m, fetched: true})
	}
	items = append(items, cs.held...)
	cs.held = nil
	if cs.users == 0 {
		cs.busy = false
		return true // nobody left to deliver to
	}
	items = mergeStreams(items)
	if !last {
		items, _ = h.applyLocked(cs, items, holeKeep, false)
		live := slices.ContainsFunc(items, func(it item) bool { return !it.fetched })
		if live || cs.again {
			cs.held = items
			return false
		}
	}
	cs.busy = false
	whole := ok && nodeCovered(cs, ask, spans)
	_, gapped := h.applyLocked(cs, items, holeGap, false)
	if !whole {
		if !gapped {
			h.gapLocal(cs.name)
		}
		cs.since = nowMs() // what came before may have holes
		h.metrics.refillsIncomplete.Add(1)
	}
	h.metrics.refills.Add(1)
	return true
}

// nodeCovered reports whether the peers' spans hold everything after the
// frontier this node asked them from. Its own stream it never misses,
// whatever the peers evicted of it. A stream it has further than any
// answering peer knows it misses nothing either: a later publish that
// was acked is held by an answering peer (that is what a complete fetch
// means), and one that was not was promised to nobody.
func nodeCovered(cs *chanState, ask history.Frontier, spans []history.Span) bool {
	newest := map[uint64]uint64{}
	others := make([]history.Span, 0, len(spans))
	for _, sp := range spans {
		if sp.Stream != cs.stream {
			others = append(others, sp)
			newest[sp.Stream] = max(newest[sp.Stream], sp.Last)
		}
	}
	marks := make(history.Frontier, 0, len(ask))
	for _, m := range ask {
		if last, known := newest[m.Stream]; known && m.Stream != cs.stream {
			marks = append(marks, history.Mark{Stream: m.Stream, Seq: min(m.Seq, last)})
		}
	}
	return history.Complete(history.Pos{Marks: marks, Time: cs.since}, others)
}

// holeMode is what applyLocked does with a message after a hole in its
// stream (seq > last delivered + 1).
type holeMode int

const (
	holeSkip holeMode = iota // leave it out: a refill will bring it
	holeKeep                 // return it, and the rest of its stream
	holeGap                  // deliver it after a gap frame
)

// applyLocked delivers to the node what it lacks of items (ordered by
// mergeStreams): each stream's next messages, and those of streams it has
// not seen that are newer than its coverage. A message after a hole goes
// as mode says: with holeKeep it is returned; with holeGap, each hole
// that follows a delivery gets its own gap frame, so that every hole is
// between a gap and what came before it, and gapped says whether one
// went out. With storeOld, messages of streams it has not seen that are
// older than its coverage are stored and counted as delivered (not sent:
// they came before its subscribers, and must not reach them later as
// new). Caller holds cs.mu.
func (h *Hub) applyLocked(cs *chanState, items []item, mode holeMode, storeOld bool) (kept []item, gapped bool) {
	told := false // a gap frame went out and nothing was delivered since
	for _, it := range items {
		had := cs.front.Get(it.Stream)
		switch {
		case it.Seq <= had:
			continue
		case had == 0 && it.Time <= cs.since-history.Skew:
			if storeOld {
				h.store.Append(cs.name, cs.lim, it.Msg)
				cs.front = cs.front.With(it.Stream, it.Seq)
			}
			continue // before this node's subscribers were here
		case had != 0 && it.Seq > had+1:
			switch mode {
			case holeSkip:
				continue
			case holeKeep:
				kept = append(kept, it)
				continue
			}
			if !told {
				h.gapLocal(cs.name)
				told, gapped = true, true
			}
		}
		h.deliverLocked(cs, it.Msg, it.except, &h.metrics.peerDeliveries)
		told = false
		if it.fetched {
			h.metrics.refilled.Add(1)
		}
	}
	return kept, gapped
}

// gapLocal tells the local subscribers of one channel that they may have
// missed publishes on it.
func (h *Hub) gapLocal(ch string) {
	h.sendGaps(ch)
}

// sweepHistory drops expired messages and forgets the state of channels
// nobody here has subscribed to for a while.
func (h *Hub) sweepHistory() {
	defer h.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		h.store.Sweep()
		old := nowMs() - time.Minute.Milliseconds()
		h.hist.mu.Lock()
		for name, cs := range h.hist.chans {
			cs.mu.Lock()
			if cs.users == 0 && !cs.busy && len(cs.held) == 0 && cs.used < old {
				delete(h.hist.chans, name)
			}
			cs.mu.Unlock()
		}
		h.hist.mu.Unlock()
	}
}

// mergeStreams removes repeats (the same message from several nodes) and
// orders items by origin time, keeping each stream in seq order.
func mergeStreams(items []item) []item {
	slices.SortStableFunc(items, func(a, b item) int {
		if a.Stream != b.Stream {
			if a.Stream < b.Stream {
				return -1
			}
			return 1
		}
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	items = slices.CompactFunc(items, func(a, b item) bool { return a.Stream == b.Stream && a.Seq == b.Seq })
	// Each stream is now a sorted run; merge the runs by the time of their
	// heads, so that no stream ever goes backwards.
	var runs [][]item
	for i := 0; i < len(items); {
		j := i + 1
		for j < len(items) && items[j].Stream == items[i].Stream {
			j++
		}
		runs = append(runs, items[i:j])
		i = j
	}
	out := make([]item, 0, len(items))
	for len(runs) > 0 {
		best := 0
		for k, r := range runs {
			if r[0].Time < runs[best][0].Time {
				best = k
			}
		}
		out = append(out, runs[best][0])
		if runs[best] = runs[best][1:]; len(runs[best]) == 0 {
			runs = slices.Delete(runs, best, best+1)
		}
	}
	return out
}

// maxFetchPages bounds one catch-up: a window is at most 10,000 messages.
const maxFetchPages = 64

// fetchAll asks every peer for ch after f, page by page, and says whether
// every live peer answered every page.
func (h *Hub) fetchAll(ctx context.Context, ch string, f history.Frontier) ([]history.Msg, []history.Span, bool) {
	var msgs []history.Msg
	var spans []history.Span
	complete := true
	for page := range maxFetchPages {
		answers, ok, err := h.relay.Fetch(ctx, ch, f, fetchBudget)
		if err != nil {
			return msgs, spans, false
		}
		complete = complete && ok
		more := false
		for _, a := range answers {
			msgs = append(msgs, a.Msgs...)
			if page == 0 {
				spans = append(spans, a.Spans...)
			}
			more = more || a.More
			for _, m := range a.Msgs {
				if m.Seq > f.Get(m.Stream) {
					f = f.With(m.Stream, m.Seq)
				}
			}
		}
		if !more {
			return msgs, spans, complete
		}
	}
	return msgs, spans, false
}
