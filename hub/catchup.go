package hub

import (
	"cmp"
	"context"
	"slices"

	"github.com/meshcast/meshcast/internal/history"
)

// recovery is a subscriber resuming from a position: a client's sub with
// since, or an in-process subscription.
type recovery struct {
	pos      history.Pos
	send     func(m history.Msg, pos string) // a message for it alone, with its position
	register func()                          // make it a live subscriber (called under the channel's lock)
	complete bool                            // out: everything published after pos was sent
}

// catchUp brings cs up to date with its peers (what this node missed, in
// each stream's order, with a gap frame where something cannot be had)
// and, with a recovery, sends that subscriber what it missed since its
// position and registers it at the exact point live delivery takes over.
// The caller has set cs.busy; catchUp ends it.
func (h *Hub) catchUp(ctx context.Context, cs *chanState, rc *recovery) {
	cs.mu.Lock()
	front, since, covered := cs.front, cs.since, cs.coveredSince
	cs.mu.Unlock()

	var msgs []history.Msg
	var spans []history.Span
	complete := true
	if rc != nil {
		// What the node delivered and the client lacks is in the store.
		r := h.store.After(cs.name, rc.pos.Marks, 1<<62)
		msgs, spans = append(msgs, r.Msgs...), append(spans, r.Spans...)
	}
	if rc == nil || needsPeers(rc.pos, front, covered) {
		got, sp, ok := h.fetchAll(ctx, cs.name, peerFrontier(front, rc))
		msgs, spans, complete = append(msgs, got...), append(spans, sp...), ok
	}

	cs.mu.Lock()
	msgs = append(msgs, cs.held...)
	cs.held = nil
	h.applyLocked(cs, mergeStreams(msgs), spans, complete, rc)
	if complete && rc != nil {
		cs.coveredSince = min(cs.coveredSince, rc.pos.Time-history.Skew)
	}
	if rc != nil {
		rc.register()
	}
	cs.releaseLocked()
	_ = since
}

// needsPeers: a recovery can be served from this node alone when the node
// holds every stream it knows past the client's marks and has followed
// (or fetched) the channel since before the client's position.
func needsPeers(p history.Pos, front history.Frontier, coveredSince int64) bool {
	if p.Time-history.Skew < coveredSince {
		return true
	}
	for _, m := range p.Marks {
		if front.Get(m.Stream) < m.Seq {
			return true // the client is ahead of this node on a stream
		}
	}
	return false
}

// peerFrontier is what to ask peers for: after the node's frontier for
// the streams it knows, after the client's for the others.
func peerFrontier(front history.Frontier, rc *recovery) history.Frontier {
	f := front
	if rc != nil {
		for _, m := range rc.pos.Marks {
			if f.Get(m.Stream) == 0 {
				f = f.With(m.Stream, m.Seq)
			}
		}
	}
	return f
}

// maxFetchPages bounds one catch-up: a window is at most 10,000 messages.
const maxFetchPages = 64

// fetchAll asks every peer for ch after f, page by page, and says whether
// every live peer answered every page.
func (h *Hub) fetchAll(ctx context.Context, ch string, f history.Frontier) ([]history.Msg, []history.Span, bool) {
	var msgs []history.Msg
	var spans []history.Span
	complete := true
	for range maxFetchPages {
		answers, ok, err := h.relay.Fetch(ctx, ch, f, fetchBudget)
		if err != nil {
			return msgs, spans, false
		}
		complete = complete && ok
		more := false
		for _, a := range answers {
			msgs, spans = append(msgs, a.Msgs...), append(spans, a.Spans...)
			more = more || a.More
			for _, m := range a.Msgs {
				f = f.With(m.Stream, m.Seq)
			}
		}
		if !more {
			return msgs, spans, complete
		}
	}
	return msgs, spans, false
}

// applyLocked delivers msgs (each stream in order) to the node and to the
// recovery: what the node lacks goes to every local subscriber, what only
// the recovering subscriber lacks goes to it alone and is recorded as had.
// A hole in what the node delivers is a gap frame right where it is.
// Caller holds cs.mu.
func (h *Hub) applyLocked(cs *chanState, msgs []history.Msg, spans []history.Span, complete bool, rc *recovery) {
	nodeOld := cs.since - history.Skew
	var client history.Pos
	if rc != nil {
		client = rc.pos
		rc.complete = complete && history.Complete(rc.pos, spans)
	}
	nodeComplete := complete && history.Complete(history.Pos{Marks: cs.front, Time: cs.since}, spans)
	gapped := false
	for _, m := range msgs {
		had := cs.front.Get(m.Stream)
		nodeNeeds := m.Seq > had && (had != 0 || m.Time > nodeOld)
		clientNeeds := rc != nil && needs(client, m)
		if nodeNeeds {
			if (had != 0 && m.Seq > had+1 || !nodeComplete) && !gapped {
				h.gapLocal(cs.name) // a hole before m: tell subscribers here, once
				gapped = true
			}
			h.deliverLocked(cs, m, "")
		} else if clientNeeds && m.Seq > had {
			// New only to the recovering subscriber (older than this node's
			// interest): recorded as had, so live deliveries stay in order.
			cs.front = cs.front.With(m.Stream, m.Seq)
			h.store.Append(cs.name, cs.lim, m)
		}
		if clientNeeds {
			client.Marks = client.Marks.With(m.Stream, m.Seq)
			client.Time = max(client.Time, m.Time)
			rc.send(m, history.EncodePos(cs.place, client))
		}
	}
	if !nodeComplete && !gapped {
		h.gapLocal(cs.name) // what is missing came after everything delivered
	}
}

// needs reports whether m is new to a subscriber at position p.
func needs(p history.Pos, m history.Msg) bool {
	if had := p.Marks.Get(m.Stream); had != 0 {
		return m.Seq > had
	}
	return m.Time > p.Time-history.Skew
}

// mergeStreams removes repeats (the same message from several nodes) and
// orders msgs by origin time, keeping each stream in seq order.
func mergeStreams(msgs []history.Msg) []history.Msg {
	slices.SortFunc(msgs, func(a, b history.Msg) int {
		return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Seq, b.Seq))
	})
	msgs = slices.CompactFunc(msgs, func(a, b history.Msg) bool { return a.Stream == b.Stream && a.Seq == b.Seq })
	// Each stream is now a sorted run; merge the runs by the time of their
	// heads, so that no stream ever goes backwards.
	var runs [][]history.Msg
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j].Stream == msgs[i].Stream {
			j++
		}
		runs = append(runs, msgs[i:j])
		i = j
	}
	out := make([]history.Msg, 0, len(msgs))
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
