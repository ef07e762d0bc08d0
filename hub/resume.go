package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport"
)

// maxTasks bounds the recoveries and history reads of one connection that
// run at once; more get err 429.
const maxTasks = 16

// subscribeSince is a sub with "since": the session joins ch, catches up
// from the position, goes live, and is acked with whether the catch-up is
// complete (recovered).
func (s *session) subscribeSince(req *request, start time.Time, checked *Identity) {
	h := s.hub
	lim, ok := h.limits(req.ch)
	if !ok {
		h.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, `"since" on a channel without history`)
		return
	}
	p, err := history.DecodePos(history.Place(req.ch), req.since)
	if err != nil {
		h.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, `bad "since": `+posReason(err))
		return
	}
	if s.tasks.Add(1) > maxTasks {
		s.tasks.Add(-1)
		s.sendErr(req, CodeRateLimited, "too many recoveries and history reads at once")
		return
	}
	t, isNew, err := s.join(req.ch, true, req.info)
	if err != nil || !isNew {
		s.tasks.Add(-1)
		if err != nil {
			s.sendErr(req, codeOf(err, CodeBadRequest), err.Error())
		} else {
			s.hub.awaitInterest(s, *req, t, start) // subscribed meanwhile: a repeat
		}
		return
	}
	if !s.stillAllowed(req, checked) {
		s.tasks.Add(-1)
		return
	}
	h.events.subscribed(&s.client, req.ch)
	id, hasID, ch := req.id, req.hasID, req.ch
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer s.tasks.Add(-1)
		recovered, err := h.resume(h.ctx, ch, lim, p, t, sessionTarget{s, ch})
		switch {
		case errors.Is(err, errGone) || h.ctx.Err() != nil:
			return // unsubscribed, closed or shutting down: nobody to ack
		case err != nil:
			// The connection is closing (it could not take the replay).
			h.log.Debug("recovery ended", slog.String("client", s.client.id), slog.String("channel", ch), slog.Any("err", err))
			return
		}
		s.send(recoveredAckFrame(id, hasID, recovered))
	}()
}

// resume waits for the cluster's confirmation of ticket t (so that every
// later publish reaches this node), then recovers target from p on ch and
// makes it live. recovered is false when something published after p may
// be missing from what it was sent.
func (h *Hub) resume(ctx context.Context, ch string, lim history.Limits, p history.Pos, t relay.Ticket, target recoveryTarget) (recovered bool, err error) {
	late := false
	if t != 0 && !h.relay.Confirmed(ch, t) {
		if err := h.relay.AwaitConfirmed(ctx, ch, t); err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			late = true // a peer's publishes may not reach this node yet
			h.metrics.interestTimeouts.Add(1)
		}
	}
	h.metrics.recoveries.Add(1)
	complete, err := h.recoverFrom(ctx, h.chanState(ch, lim), p, target)
	if err != nil {
		return false, err
	}
	if !complete || late {
		h.metrics.recoveriesPartial.Add(1)
	}
	return complete && !late, nil
}

func posReason(err error) string {
	if errors.Is(err, history.ErrOtherPlace) {
		return "a position of another channel"
	}
	return "not a position"
}

// sessionTarget feeds a recovery to a client connection.
type sessionTarget struct {
	s  *session
	ch string
}

func (t sessionTarget) room(ctx context.Context) error {
	need := t.s.hub.cfg.MaxDataSize + 4096 // the biggest msg frame, and then some
	for {
		room, open := t.s.conn.Room()
		if !open {
			return transport.ErrClosed
		}
		if room >= need || room >= t.s.hub.cfg.Transport.WriteQueueSize/2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(roomPoll):
		}
	}
}

func (t sessionTarget) send(ch string, m history.Msg, pos string) {
	frame, _ := msgFrame(ch, m.Data, pos)
	t.s.send(frame)
	t.s.hub.metrics.deliveries.Add(1)
}

func (t sessionTarget) live() bool {
	return t.s.live(t.ch)
}

// history answers {"op":"history"}: the channel's newest messages.
func (s *session) history(req *request) {
	h := s.hub
	if !s.checkChannel(req) || !s.inStanding(req) {
		return
	}
	lim, ok := h.limits(req.ch)
	if !ok {
		h.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, "channel has no history")
		return
	}
	if !s.subscribed(req.ch) {
		if err := s.authorizeSubscribe(req.ch); err != nil {
			s.sendErr(req, codeOf(err, CodeForbidden), err.Error())
			return
		}
	}
	if s.tasks.Add(1) > maxTasks {
		s.tasks.Add(-1)
		s.sendErr(req, CodeRateLimited, "too many recoveries and history reads at once")
		return
	}
	limit := lim.Max
	if req.limit >= 0 {
		limit = min(req.limit, lim.Max)
	}
	id, hasID, ch := req.id, req.hasID, req.ch
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer s.tasks.Add(-1)
		ctx, cancel := context.WithTimeout(h.ctx, refillTimeout)
		defer cancel()
		msgs, pos, err := h.readHistory(ctx, ch, lim, limit)
		if err != nil {
			s.sendErr(&request{id: id, hasID: hasID}, CodeUnavailable, "history unavailable: "+err.Error())
			return
		}
		// One frame must fit the connection's queue: the oldest go first.
		budget := h.cfg.Transport.WriteQueueSize / 2
		for size := historySize(msgs, pos); size > budget && len(msgs) > 0; {
			size -= len(msgs[0].Data) + len(pos[0]) + 24
			msgs, pos = msgs[1:], pos[1:]
		}
		if err := (sessionTarget{s, ch}).room(ctx); err != nil {
			return
		}
		s.send(historyFrame(id, hasID, ch, msgs, pos))
	}()
}

func historySize(msgs []history.Msg, pos []string) int {
	n := 0
	for i, m := range msgs {
		n += len(m.Data) + len(pos[i]) + 24
	}
	return n
}

// HistoryMessage is one message of a channel's history.
type HistoryMessage struct {
	Data []byte // one valid JSON value; do not modify
	Pos  string // the position to resume from after it (Since)
}

// History returns up to limit of ch's newest messages, oldest first (limit
// ≤ 0: the whole window), from wherever in the cluster they are held.
func (h *Hub) History(ctx context.Context, ch string, limit int) ([]HistoryMessage, error) {
	if err := checkServerChannel(ch); err != nil {
		return nil, err
	}
	if err := h.serving(ctx); err != nil {
		return nil, err
	}
	lim, ok := h.limits(ch)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoHistory, quoteForReason(ch))
	}
	if limit <= 0 || limit > lim.Max {
		limit = lim.Max
	}
	msgs, pos, err := h.readHistory(ctx, ch, lim, limit)
	if err != nil {
		return nil, err
	}
	out := make([]HistoryMessage, len(msgs))
	for i, m := range msgs {
		out[i] = HistoryMessage{Data: m.Data, Pos: pos[i]}
	}
	return out, nil
}

// SubscribeOption adjusts one Hub.Subscribe (Since) or Client.Subscribe
// (WithInfo).
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	since    string
	hasSince bool
	info     []byte // WithInfo (presence_ops.go)
}

// Since resumes the subscription from a position (Message.Pos or
// HistoryMessage.Pos, from any node): fn first gets every message
// published after it that it did not have, then the live ones, each once.
// Subscription.Recovered says whether that catch-up is complete. The
// channel must have history.
func Since(pos string) SubscribeOption {
	return func(o *subscribeOptions) { o.since, o.hasSince = pos, true }
}

// localTarget feeds a recovery to an in-process subscription.
type localTarget struct{ s *Subscription }

func (t localTarget) room(ctx context.Context) error {
	for {
		t.s.mu.Lock()
		n, closed := len(t.s.queue), t.s.closed
		t.s.mu.Unlock()
		if closed {
			return errGone
		}
		if n < maxLocalQueue/2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(roomPoll):
		}
	}
}

func (t localTarget) send(ch string, m history.Msg, pos string) {
	t.s.push(Message{Channel: ch, Data: m.Data, Pos: pos})
}

func (t localTarget) live() bool {
	// Under the subscription's lock, so that a Close either comes first
	// (and it stays out) or after (and removes it).
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.s.closed {
		return false
	}
	t.s.h.reg.addLocal(t.s.ch, t.s)
	return true
}
