package hub

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/meshcast/meshcast/internal/relay"
)

// A sub is acked once every peer has confirmed the interest it caused
// (relay.Relay.AwaitConfirmed), normally one round trip on the peer links.
// The subscribes of one session that wait for that are queued and acked
// in order by a single goroutine, started when the first one waits and
// gone when none does: a client joining hundreds of new channels at once
// costs a slice entry each, not a goroutine each, and is never refused
// for it on a healthy cluster.

// maxExtraWaits is how many subscribes a session may have waiting beyond
// its MaxSubscriptions (repeated subs of a channel, or subs of channels it
// left while they waited). More than that waiting at once needs a peer
// that does not answer, and gets err 429.
const maxExtraWaits = 64

// subWaits is a session's subscribes waiting for the cluster.
type subWaits struct {
	// mu guards queue and running; it is never held while taking another
	// lock.
	mu      sync.Mutex
	queue   []subWait // oldest first
	running bool      // a waiter goroutine owns the queue

	// unconfirmed counts, per channel, the subscribes still waiting for
	// the cluster: a gap is not sent for them, since nothing was promised
	// yet (a gap emitted before the ack covers only losses before it).
	// Guarded by the session's mu, not by this mu.
	unconfirmed map[string]int
}

// waitQueue returns s's waiting subscribes, made at the first call. Only
// the session's reader calls it (awaitInterest), so the store cannot race
// another; the waiter goroutine loads what it stored.
func (s *session) waitQueue() *subWaits {
	q := s.waits.Load()
	if q == nil {
		q = new(subWaits)
		s.waits.Store(q)
	}
	return q
}

type subWait struct {
	req   request // its id and channel; data is not kept (sub has none)
	t     relay.Ticket
	since time.Time // when it was queued, to settle those as old at once
	start time.Time // when the sub arrived, for Observer; zero without one
}

// push queues w unless limit are waiting; run reports whether the
// caller must start the waiter.
func (q *subWaits) push(w subWait, limit int) (queued, run bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) >= limit {
		return false, false
	}
	q.queue = append(q.queue, w)
	run, q.running = !q.running, true
	return true, run
}

// head returns the oldest waiting subscribe; when there is none the
// waiter is done, and the next push starts another.
func (q *subWaits) head() (subWait, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		q.queue, q.running = nil, false // let a burst's backing array go
		return subWait{}, false
	}
	return q.queue[0], true
}

// take removes the oldest, and every other that came no later than
// before (zero time: only the oldest).
func (q *subWaits) take(before time.Time) []subWait {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 1
	for n < len(q.queue) && !q.queue[n].since.After(before) {
		n++
	}
	taken := append([]subWait(nil), q.queue[:n]...)
	clear(q.queue[:n])
	q.queue = q.queue[n:]
	return taken
}

// awaitInterest acks a subscribe once every peer has confirmed ticket t:
// at once, on the caller's goroutine, when that is already so (or there
// are no peers); otherwise the session's waiter does, so the transport's
// read worker never waits. If a peer does not confirm in time the sub is
// acked anyway, followed by a gap on the channel, since publishes on that
// peer may not reach this node until it does (the cluster reports another
// gap then). start is when the sub arrived (zero without an Observer),
// for Observer.SubscribeAcked.
func (h *Hub) awaitInterest(s *session, req request, t relay.Ticket, start time.Time) {
	if t == 0 || h.relay.Confirmed(req.ch, t) {
		s.subAck(&req)
		h.observeSubAck(start)
		return
	}
	req.data = nil // points into the frame, which is the transport's
	q := s.waitQueue()
	// Counted before it is queued: the waiter may settle it at once.
	s.waiting.Add(1)
	s.setPending(req.ch, 1)
	w := subWait{req: req, t: t, since: time.Now(), start: start}
	queued, run := q.push(w, h.live().MaxSubscriptions+maxExtraWaits)
	if !queued {
		s.setPending(req.ch, -1)
		s.waiting.Add(-1)
		s.sendErr(&req, CodeRateLimited, "too many subscribes waiting for the cluster")
		return
	}
	if run {
		h.wg.Add(1)
		go h.ackWaits(s)
	}
}

// ackWaits is a session's waiter: it waits for the oldest subscribe, acks
// it, and so on until none is left. The relay bounds each wait by its
// interest timeout; when one times out, those that have waited as long
// (they came before its wait began) are settled at once, with a deadline
// already passed, which the relay takes as its timeout: so a sub is acked
// within two timeouts however many wait, not one timeout after another.
func (h *Hub) ackWaits(s *session) {
	defer h.wg.Done()
	q := s.waits.Load() // stored before this goroutine started
	for {
		w, ok := q.head()
		if !ok {
			return
		}
		began := time.Now()
		err := h.relay.AwaitConfirmed(h.ctx, w.req.ch, w.t)
		if err == nil || h.ctx.Err() != nil {
			h.settle(s, q.take(time.Time{}), err)
			continue
		}
		late := q.take(began)
		h.settle(s, late[:1], err)
		due, cancel := context.WithDeadline(h.ctx, began)
		for i := 1; i < len(late); i++ {
			h.settle(s, late[i:i+1], h.relay.AwaitConfirmed(due, late[i].req.ch, late[i].t))
		}
		cancel()
		h.log.Warn("subscribes acked before every peer confirmed them; their clients got a gap",
			slog.String("client", s.client.id), slog.Int("subscribes", len(late)), slog.Any("err", err))
	}
}

// settle acks waits; err (a timeout) means a gap must follow each.
func (h *Hub) settle(s *session, waits []subWait, err error) {
	for _, w := range waits {
		s.setPending(w.req.ch, -1) // before the ack: a gap after it must reach the client
		s.waiting.Add(-1)
		s.subAck(&w.req)
		h.observeSubAck(w.start)
		if err != nil && h.ctx.Err() == nil {
			h.lateConfirmation(s, w.req.ch)
		}
	}
}

// lateConfirmation tells a subscriber acked before every peer confirmed
// that publishes may be missing.
func (h *Hub) lateConfirmation(s *session, ch string) {
	h.metrics.interestTimeouts.Add(1)
	h.metrics.gaps.Add(1)
	s.send(gapFrame(ch))
}
