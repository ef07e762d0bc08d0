package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"sync"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

// Channels with history (Namespace.History): every publish is numbered in
// its node's stream, stored by every node that delivers it, and sent with a
// position (pos) a client can resume from on any node. See docs/history.md.

// fetchBudget bounds the data of one fetch answer; a channel's whole
// window comes in pages.
const fetchBudget = 256 << 10

// chanState is a channel with history as this node follows it. Its mutex
// orders everything delivered on the channel here (local publishes, peers'
// publishes, refills, recoveries), so that each stream reaches every local
// subscriber in order and a position means the same to all of them.
type chanState struct {
	name  string
	place uint32
	since int64 // Unix ms this node started following the channel

	mu     sync.Mutex
	lim    history.Limits
	stream uint64 // this node's stream on the channel (fresh for each state)
	seq    uint64 // its last number
	front  history.Frontier
	ftime  int64        // newest origin time delivered
	held   []history.Msg // peers' publishes waiting for a refill to fill the hole before them
	busy   bool          // a catch-up runs
	idle   chan struct{} // closed when it ends
}

// histState holds the channels with history this node follows.
type histState struct {
	mu    sync.Mutex
	chans map[string]*chanState
}

// limits returns ch's history limits, and whether ch has history.
func (h *Hub) limits(ch string) (history.Limits, bool) {
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
		if h.hist.chans == nil {
			h.hist.chans = make(map[string]*chanState)
		}
		cs = &chanState{name: ch, place: history.Place(ch), since: nowMs(), stream: newStreamID()}
		h.hist.chans[ch] = cs
	}
	cs.lim = lim // under hist.mu: limits may change with the config
	return cs
}

func newStreamID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0
}

func nowMs() int64 { return time.Now().UnixMilli() }

// publishStamped publishes on a channel with history: numbered in this
// node's stream, stored, delivered with its position, and sent to the
// peers that store it; stored learns when enough of them did.
func (h *Hub) publishStamped(ch string, lim history.Limits, data []byte, except string, stored func(error)) {
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.seq++
	st := relay.Stamp{Stream: cs.stream, Seq: cs.seq, Time: nowMs()}
	kept := h.deliverLocked(cs, history.Msg{Stream: st.Stream, Seq: st.Seq, Time: st.Time, Data: data}, except)
	h.relay.Publish(ch, kept, except, &st, stored)
}

// deliverLocked stores m, advances the channel's frontier, and queues m
// with its position to every local subscriber but except. It returns the
// data as kept in the frame (never modified, so peers may keep it).
// Caller holds cs.mu.
func (h *Hub) deliverLocked(cs *chanState, m history.Msg, except string) []byte {
	cs.front = cs.front.With(m.Stream, m.Seq)
	cs.ftime = max(cs.ftime, m.Time)
	pos := history.EncodePos(cs.place, history.Pos{Marks: cs.front, Time: cs.ftime})
	frame, kept := msgFrame(cs.name, m.Data, pos)
	m.Data = kept
	h.store.Append(cs.name, cs.lim, m)
	h.fanOut(cs.name, frame, kept, except, pos)
	return kept
}

// deliverStamped takes a peer's publish on a channel with history: in
// order it is delivered, a repeat is dropped, and one after a hole waits
// for a catch-up that fetches the missing ones from the peers first.
func (h *Hub) deliverStamped(ch string, data []byte, except string, st relay.Stamp) {
	lim, ok := h.limits(ch)
	if !ok {
		// A peer has history on ch and this node does not: a config that
		// differs between nodes. Keep it anyway (the peer counts on this
		// copy), with a default window.
		lim = history.Limits{Max: 1000}
		h.log.Warn("a peer published with history on a channel without history here: is the namespace config the same on every node?",
			slog.String("channel", ch))
	}
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	m := history.Msg{Stream: st.Stream, Seq: st.Seq, Time: st.Time, Data: data}
	last := cs.front.Get(st.Stream)
	switch {
	case st.Seq <= last:
		return // had it (a refill was faster)
	case cs.busy || st.Seq > last+1 && (last != 0 || st.Time > cs.since-history.Skew):
		// A hole before it (or, for a stream new to this node, maybe
		// one), or a catch-up running: wait for the catch-up.
		m.Data = bytes.Clone(data)
		cs.held = append(cs.held, m)
		h.startCatchUpLocked(cs)
		return
	}
	h.deliverLocked(cs, m, except)
}

// startCatchUpLocked starts a node-level catch-up of cs unless one runs.
// Caller holds cs.mu.
func (h *Hub) startCatchUpLocked(cs *chanState) {
	if cs.busy {
		return
	}
	cs.busy, cs.idle = true, make(chan struct{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.catchUp(h.ctx, cs, nil)
	}()
}

// refill is what the cluster's gaps become on channels with history: the
// node fetches what it may have missed instead of telling its subscribers.
// It returns the channels without history, which get gap frames.
func (h *Hub) refill(chs []string) []string {
	var plain []string
	for _, ch := range chs {
		lim, ok := h.limits(ch)
		if !ok {
			plain = append(plain, ch)
			continue
		}
		cs := h.chanState(ch, lim)
		cs.mu.Lock()
		h.startCatchUpLocked(cs)
		cs.mu.Unlock()
	}
	return plain
}

// waitIdle waits until no catch-up runs on cs, then returns with cs.mu
// held and busy set (the caller runs its own).
func (cs *chanState) acquire(ctx context.Context) error {
	for {
		cs.mu.Lock()
		if !cs.busy {
			cs.busy, cs.idle = true, make(chan struct{})
			return nil
		}
		idle := cs.idle
		cs.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release ends a catch-up: the held deliveries that are still in order go
// out, and waiters may start theirs. Caller holds cs.mu.
func (cs *chanState) releaseLocked() {
	cs.busy = false
	close(cs.idle)
	cs.mu.Unlock()
}
