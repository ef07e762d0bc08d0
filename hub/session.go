package hub

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/meshcast/meshcast/transport"
)

// session is one client connection. The transport calls OnOpen, OnMessage
// and OnClose in order and never at once, so subs needs no lock; other
// goroutines only call conn.Send, which is safe from anywhere.
type session struct {
	hub  *Hub
	conn *transport.Conn
	info ClientInfo
	subs []*channel // the channels this session is in, for O(subs) release

	waiting atomic.Int32 // subscribes waiting for the cluster's interest acks
	sec     sessionSecurity
}

var _ transport.Handler = (*session)(nil)

func (s *session) OnOpen(c *transport.Conn) {
	s.conn = c
	s.hub.sessionOpened()
	s.hub.trackSession(s)
	s.send(helloFrame(s.info.ID, s.hub.cfg.NodeName, s.info.User))
}

func (s *session) OnClose(err error) {
	for _, c := range s.subs {
		s.hub.reg.remove(c, s, s.hub.relay)
	}
	s.subs = nil
	s.hub.untrackSession(s)
	s.hub.sessionClosed(s, err)
}

func (s *session) OnMessage(frame []byte) {
	req, err := decodeRequest(frame)
	if err != nil {
		s.hub.metrics.badRequests.Add(1)
		s.send(errFrame(&req, CodeBadRequest, err.Error()))
		return
	}
	switch req.op {
	case opSub:
		s.subscribe(&req)
	case opUnsub:
		s.unsubscribe(&req)
	case opPub:
		s.publish(&req)
	default:
		s.hub.metrics.badRequests.Add(1)
		s.send(errFrame(&req, CodeBadRequest, "unknown op "+quoteForReason(req.op)))
	}
}

func (s *session) subscribe(req *request) {
	if !s.checkChannel(req) {
		return
	}
	if s.find(req.ch) >= 0 {
		// Already subscribed: idempotent, like Socket.IO's join, but the
		// first sub may still be waiting for the cluster, and this ack
		// promises the same.
		s.hub.awaitInterest(s, *req)
		return
	}
	if max := s.hub.cfg.MaxSubscriptions; len(s.subs) >= max {
		s.send(errFrame(req, CodeRateLimited, "subscription limit reached"))
		return
	}
	if err := s.authorizeSubscribe(req.ch); err != nil {
		s.send(errFrame(req, CodeForbidden, err.Error()))
		return
	}
	c, _ := s.hub.reg.add(req.ch, s, s.hub.relay)
	s.subs = append(s.subs, c)
	s.hub.awaitInterest(s, *req)
}

func (s *session) unsubscribe(req *request) {
	if !s.checkChannel(req) {
		return
	}
	if i := s.find(req.ch); i >= 0 {
		c := s.subs[i]
		last := len(s.subs) - 1
		s.subs[i] = s.subs[last]
		s.subs[last] = nil
		s.subs = s.subs[:last]
		s.hub.reg.remove(c, s, s.hub.relay)
	}
	s.ack(req)
}

func (s *session) publish(req *request) {
	if !s.checkChannel(req) {
		return
	}
	if req.data == nil {
		s.hub.metrics.badRequests.Add(1)
		s.send(errFrame(req, CodeBadRequest, `pub needs "data"`))
		return
	}
	if len(req.data) > s.hub.cfg.MaxDataSize {
		s.send(errFrame(req, CodeTooLarge, "data is larger than the limit"))
		return
	}
	if !s.publishAllowed() {
		s.send(errFrame(req, CodeRateLimited, "publish rate limit exceeded"))
		return
	}
	if err := s.authorizePublish(req.ch, req.data); err != nil {
		s.send(errFrame(req, CodeForbidden, err.Error()))
		return
	}
	s.hub.publish(req.ch, req.data)
	s.ack(req)
}

func (s *session) checkChannel(req *request) bool {
	reason := validChannel(req.ch)
	if reason == "" {
		return true
	}
	s.hub.metrics.badRequests.Add(1)
	s.send(errFrame(req, CodeBadRequest, reason))
	return false
}

func (s *session) find(name string) int {
	for i, c := range s.subs {
		if c.name == name {
			return i
		}
	}
	return -1
}

func (s *session) ack(req *request) {
	if req.hasID {
		s.send(ackFrame(req.id))
	}
}

// send queues a frame; a full queue has already closed the connection as a
// slow consumer, and a closed one needs nothing more.
func (s *session) send(frame []byte) {
	if err := s.conn.Send(frame); err != nil && !errors.Is(err, transport.ErrClosed) && !errors.Is(err, transport.ErrQueueFull) {
		s.hub.log.Debug("send failed", slog.String("client", s.info.ID), slog.Any("err", err))
	}
}

// maxWaitingSubs bounds the subscribes of one connection that wait for
// peers at once; more get err 429. Waits take one round trip normally, so
// only a client racing an unreachable peer meets it.
const maxWaitingSubs = 64

// awaitInterest acks a subscribe once the cluster has the interest. When
// every peer already has it (or there are none) that is at once, on the
// caller's goroutine; otherwise a goroutine waits the round trip, so the
// transport's read worker never does.
func (h *Hub) awaitInterest(s *session, req request) {
	if h.relay.InterestReady(req.ch) {
		s.ack(&req)
		return
	}
	// Each wait is a goroutine for up to the relay's timeout; a client
	// churning subscribes while a peer is unreachable must not pile them up.
	if s.waiting.Add(1) > maxWaitingSubs {
		s.waiting.Add(-1)
		s.send(errFrame(&req, CodeRateLimited, "too many subscribes waiting for the cluster"))
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer s.waiting.Add(-1)
		// The relay bounds the wait itself; h.ctx ends it at shutdown.
		if err := h.relay.AwaitInterest(h.ctx, req.ch); err != nil {
			h.metrics.interestTimeouts.Add(1)
			h.log.Warn("subscribe acked before every peer confirmed interest",
				slog.String("channel", req.ch), slog.Any("err", err))
		}
		s.ack(&req)
	}()
}

func quoteForReason(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return string(appendQuoted(nil, s))
}
