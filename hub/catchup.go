package hub

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/meshcast/meshcast/internal/history"
)

// A subscriber that resumes from a position (a sub with "since", or
// Hub.Subscribe with Since) is not a live subscriber until it has caught
// up. It is sent, in each stream's order, what it lacks: first what only
// the peers still hold, then this node's store page by page at the pace
// the subscriber reads, and the last few under the channel's lock, where
// it becomes live. So every publish reaches it exactly once: from history
// before that point, live after it.

// recoveryTarget is the subscriber a recovery feeds.
type recoveryTarget interface {
	// room waits until the subscriber can take more, or reports why not.
	room(ctx context.Context) error
	send(ch string, m history.Msg, pos string)
	// live makes it a live subscriber; false: it is gone (unsubscribed or
	// closed). Called under the channel's lock.
	live() bool
}

// errGone: the subscriber went away during its recovery.
var errGone = errors.New("hub: subscriber gone during recovery")

// recoverPage bounds the data read from the store per step.
const recoverPage = 64 << 10

// finalBatch is how many messages may be sent under the channel's lock
// when going live (without waiting for room): more, and the recovery
// steps again first.
const finalBatch = 256

// recoverFrom sends t what it lacks of cs since p, makes it live, and
// reports whether what it was sent is complete (everything published
// after p that it did not have).
func (h *Hub) recoverFrom(ctx context.Context, cs *chanState, p history.Pos, t recoveryTarget) (complete bool, err error) {
	complete = true
	r := replay{ch: cs.name, place: cs.place, client: history.Pos{Marks: slices.Clone(p.Marks), Time: p.Time}}
	r.query = slices.Clone(r.client.Marks)
	if !h.canVouch(cs, p) {
		extra, ok, err := h.fetchForRecovery(ctx, cs, p)
		if err != nil {
			return false, err
		}
		complete = ok
		for _, m := range extra {
			if err := t.room(ctx); err != nil {
				return false, err
			}
			r.offer(m, t)
		}
	}

	for {
		page := h.store.After(cs.name, r.query, recoverPage)
		if !page.More && len(page.Msgs) <= finalBatch {
			cs.mu.Lock()
			if cs.busy {
				// A refill runs: it may still deliver messages this
				// subscriber has had (it can be ahead of the node), which
				// must not reach it live. Go live after it.
				cs.mu.Unlock()
				if err := sleepCtx(ctx, roomPoll); err != nil {
					return false, err
				}
				continue
			}
			page = h.store.After(cs.name, r.query, recoverPage)
			if !page.More && len(page.Msgs) <= 2*finalBatch {
				for _, m := range page.Msgs {
					r.offer(m, t)
				}
				ok := t.live()
				cs.mu.Unlock()
				if !ok {
					return false, errGone
				}
				return complete && !r.holes, nil
			}
			cs.mu.Unlock()
		}
		for _, m := range page.Msgs {
			if err := t.room(ctx); err != nil {
				return false, err
			}
			r.offer(m, t)
		}
	}
}

// canVouch reports whether this node alone holds everything published on
// cs after p: it has had every publish of the channel since before p (less
// the clock skew), it is not behind p on any stream, and its store holds
// every seq after p's marks.
func (h *Hub) canVouch(cs *chanState, p history.Pos) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.since <= p.Time-history.Skew && !ahead(p.Marks, cs.front) && history.Complete(p, h.store.Spans(cs.name))
}

// fetchForRecovery asks the peers for what they hold of cs after p, gives
// the node what it lacks (delivered if it is new to its subscribers,
// stored if older), and returns, in order, what the subscriber needs that
// the store does not hold, and whether what the subscriber will get is
// complete. The first of several recoveries at once fetches; the others
// find the node able to vouch, usually.
func (h *Hub) fetchForRecovery(ctx context.Context, cs *chanState, p history.Pos) (extra []history.Msg, complete bool, err error) {
	cs.fetchMu.Lock()
	defer cs.fetchMu.Unlock()
	if h.canVouch(cs, p) {
		return nil, true, nil
	}
	cs.mu.Lock()
	front := slices.Clone(cs.front)
	cs.mu.Unlock()
	localSpans := h.store.Spans(cs.name)
	msgs, peerSpans, ok := h.fetchAll(ctx, cs.name, askFrontier(p.Marks, front))
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	complete = ok && history.Complete(p, append(localSpans, peerSpans...))
	items := make([]item, len(msgs))
	for i, m := range msgs {
		items[i] = item{Msg: m}
	}
	items = mergeStreams(items)
	cs.mu.Lock()
	if !cs.busy && cs.users > 0 {
		h.applyLocked(cs, items, false, true) // what the node lacks too, in order
	}
	held := h.store.Spans(cs.name)
	if complete && history.Complete(p, held) && cs.users > 0 {
		// The node now holds everything after p: later recoveries from
		// there on need no fetch.
		cs.since = min(cs.since, p.Time-history.Skew)
	}
	cs.mu.Unlock()
	// What the store does not hold goes first: for each stream, what
	// comes before the first seq stored.
	for _, it := range items {
		if first := firstStored(held, it.Stream); first != 0 && it.Seq >= first {
			continue
		}
		extra = append(extra, it.Msg)
	}
	return extra, complete, nil
}

// replay is the subscriber's side of a recovery: its position as it goes,
// and what was looked at.
type replay struct {
	ch     string
	place  uint32
	client history.Pos      // what it has been sent
	query  history.Frontier // what was looked at (sent, or too old for it)
	holes  bool             // a seq was missing in a stream it knows
}

// offer sends m if the subscriber lacks it.
func (r *replay) offer(m history.Msg, t recoveryTarget) {
	if m.Seq > r.query.Get(m.Stream) {
		r.query = r.query.With(m.Stream, m.Seq)
	}
	had := r.client.Marks.Get(m.Stream)
	switch {
	case had != 0 && m.Seq <= had:
		return
	case had != 0 && m.Seq > had+1:
		r.holes = true
	case had == 0 && m.Time <= r.client.Time-history.Skew:
		return // before it was there
	}
	r.client.Marks = r.client.Marks.With(m.Stream, m.Seq)
	r.client.Time = max(r.client.Time, m.Time)
	t.send(r.ch, m, history.EncodePos(r.place, r.client))
}

// ahead reports whether p names a stream further than front: the node has
// not delivered everything the subscriber has seen.
func ahead(p, front history.Frontier) bool {
	for _, m := range p {
		if front.Get(m.Stream) < m.Seq {
			return true
		}
	}
	return false
}

// askFrontier is what to ask peers for: after the subscriber's mark for
// the streams it knows (or the node's, if further back), everything of
// the others, which the subscriber judges by time.
func askFrontier(p, front history.Frontier) history.Frontier {
	out := slices.Clone(p)
	for i, m := range out {
		if f := front.Get(m.Stream); f != 0 && f < m.Seq {
			out[i].Seq = f
		}
	}
	return out
}

// firstStored is the first seq of stream the store holds (0: none).
func firstStored(spans []history.Span, stream uint64) uint64 {
	for _, sp := range spans {
		if sp.Stream == stream && sp.First <= sp.Last {
			return sp.First
		}
	}
	return 0
}

// readHistory returns up to limit of ch's newest messages, oldest first:
// from this node's store when it has followed ch long enough to vouch for
// them, else merged with what the peers hold.
func (h *Hub) readHistory(ctx context.Context, ch string, lim history.Limits, limit int) ([]history.Msg, []string, error) {
	cs := h.chanState(ch, lim)
	cs.mu.Lock()
	since := cs.since
	local := h.store.Last(ch, limit)
	cs.mu.Unlock()
	msgs := local
	if len(local) < limit || since > local[0].Time-history.Skew {
		got, _, _ := h.fetchAll(ctx, ch, nil)
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		items := make([]item, 0, len(got)+len(local))
		for _, m := range append(got, local...) {
			items = append(items, item{Msg: m})
		}
		items = mergeStreams(items)
		items = items[max(0, len(items)-limit):]
		msgs = make([]history.Msg, len(items))
		for i, it := range items {
			msgs[i] = it.Msg
		}
	}
	// Each message's position is where a subscriber that had it, and
	// everything before it here, resumes.
	place := history.Place(ch)
	var p history.Pos
	pos := make([]string, len(msgs))
	for i, m := range msgs {
		p.Marks = p.Marks.With(m.Stream, m.Seq)
		p.Time = max(p.Time, m.Time)
		pos[i] = history.EncodePos(place, p)
	}
	return msgs, pos, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// roomPoll is how often a recovery looks whether a subscriber that reads
// slowly has room again.
const roomPoll = 2 * time.Millisecond
