package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport"
)

// session is one client connection: the transport's Handler and the state
// behind its Client. The transport calls OnOpen, OnMessage and OnClose in
// order and never at once; Client methods may come from any goroutine.
type session struct {
	hub    *Hub
	conn   *transport.Conn
	client Client

	// mu guards subs, closed and waits' unconfirmed. Lock order:
	// session.mu, then the registry's lock, then the cluster's (relay
	// calls).
	mu     sync.Mutex
	subs   []sub // the channels this session is in, for O(subs) release
	closed bool  // OnClose began: no more subscriptions

	waiting atomic.Int32 // subscribes waiting for the cluster's confirmation
	tasks   atomic.Int32 // recoveries and history reads running
	// waits holds those subscribes for their waiter (await.go). Made at
	// the first one that waits: most sessions never do, and an idle
	// connection's memory is mostly this struct (BENCHMARKS.md).
	waits atomic.Pointer[subWaits]
	sec   sessionSecurity
}

// sub is one of a session's subscriptions, with the cluster ticket a
// repeated sub waits for. While it recovers from a position it is not a
// live subscriber of the channel yet: c is then a channel of its own,
// outside the registry, that only names it. Kept small: an idle
// connection has one.
type sub struct {
	c       *channel
	t       relay.Ticket
	live    bool // c is the registry's channel (reg.add)
	present bool // it made the session present on the channel (presence_sync.go)
}

var _ transport.Handler = (*session)(nil)

// errSubLimit refuses a subscription over Config.MaxSubscriptions.
var errSubLimit = &Error{Code: CodeRateLimited, Reason: "subscription limit reached"}

func (s *session) OnOpen(c *transport.Conn) {
	s.conn = c
	s.hub.sessionOpened()
	s.hub.trackSession(s)
	s.hub.onlineOpened(s)
	var expires time.Time // only a connection with a user can refresh
	if id := s.client.Identity(); id.User != "" {
		expires = id.ExpiresAt
	}
	s.send(helloFrame(s.client.id, s.hub.cfg.NodeName, s.client.User(), s.hub.transport.MaxMessageSize(), expires))
	s.hub.events.connected(&s.client)
}

func (s *session) OnClose(err error) {
	s.mu.Lock()
	s.closed = true
	subs := s.subs
	s.subs = nil
	s.hub.metrics.subscriptions.Add(-int64(len(subs)))
	for _, sb := range subs {
		if sb.live {
			s.hub.reg.remove(sb.c, s)
		}
		s.hub.relay.Unsubscribe(sb.c.name)
		if sb.present {
			s.hub.presenceLeave(s, sb.c.name)
		}
	}
	s.mu.Unlock()
	for _, sb := range subs {
		s.hub.histRef(sb.c.name, -1)
		s.hub.events.unsubscribed(&s.client, sb.c.name)
	}
	s.hub.untrackSession(s)
	s.hub.onlineClosed(s)
	s.hub.sessionClosed(s, err)
}

func (s *session) OnMessage(frame []byte) {
	req, err := decodeRequest(frame)
	if err != nil {
		s.hub.metrics.badRequests.Add(1)
		s.sendErr(&req, CodeBadRequest, err.Error())
		return
	}
	switch req.op {
	case opSub:
		s.subscribe(&req)
	case opUnsub:
		s.unsubscribe(&req)
	case opPub:
		s.publish(&req)
	case opHist:
		s.history(&req)
	case opPresence, opPresenceStats:
		s.presenceQuery(&req)
	case opPing:
		s.ack(&req)
	case opRefresh:
		s.refresh(&req)
	default:
		s.hub.metrics.badRequests.Add(1)
		s.sendErr(&req, CodeBadRequest, "unknown op "+quoteForReason(req.op))
	}
}

// join adds the session to ch unless it is in it already. It returns the
// cluster ticket to wait for (zero: nothing to wait for) and whether the
// subscription is new. With recovering, the session is not made a live
// subscriber yet (live does, when it has caught up).
// On a presence channel a new subscription makes the session present
// with info.
func (s *session) join(ch string, recovering bool, info []byte) (t relay.Ticket, isNew bool, err error) {
	s.hub.histRef(ch, 1) // before it can receive anything (lock order: not under s.mu)
	t, isNew, err = s.joinLocked(ch, recovering, info)
	if !isNew {
		s.hub.histRef(ch, -1)
	}
	return t, isNew, err
}

func (s *session) joinLocked(ch string, recovering bool, info []byte) (t relay.Ticket, isNew bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, false, ErrClosed
	case s.find(ch) >= 0:
		return s.subs[s.find(ch)].t, false, nil
	case len(s.subs) >= s.hub.live().MaxSubscriptions:
		return 0, false, errSubLimit
	}
	var c *channel
	if recovering {
		c = &channel{name: ch}
	} else {
		c = s.hub.reg.add(ch, s)
	}
	t, confirmed := s.hub.relay.Subscribe(ch, s.hub.presenceOn(ch))
	if confirmed {
		t = 0
	}
	s.subs = append(s.subs, sub{c: c, t: t, live: !recovering, present: s.hub.presenceOn(ch)})
	if s.subs[len(s.subs)-1].present {
		s.hub.presenceJoin(s, ch, info)
	}
	s.hub.metrics.subscriptions.Add(1)
	return t, true, nil
}

// live makes a recovering subscription of ch a live one, unless it was
// dropped meanwhile. Called under the channel's history lock, so that no
// delivery falls between the recovery and the live stream.
func (s *session) live(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(ch)
	if i < 0 || s.closed || s.subs[i].live {
		return false
	}
	s.subs[i].c, s.subs[i].live = s.hub.reg.add(ch, s), true
	return true
}

// leave removes the session from ch and reports whether it was in it.
func (s *session) leave(ch string) bool {
	if !s.leaveLocked(ch) {
		return false
	}
	s.hub.histRef(ch, -1)
	return true
}

func (s *session) leaveLocked(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(ch)
	if i < 0 {
		return false
	}
	c, live, present := s.subs[i].c, s.subs[i].live, s.subs[i].present
	last := len(s.subs) - 1
	s.subs[i] = s.subs[last]
	s.subs[last] = sub{}
	s.subs = s.subs[:last]
	if live {
		s.hub.reg.remove(c, s)
	}
	s.hub.relay.Unsubscribe(ch)
	s.hub.metrics.subscriptions.Add(-1)
	if present {
		s.hub.presenceLeave(s, ch)
	}
	return true
}

// subscribed reports whether the session is in ch.
func (s *session) subscribed(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.find(ch) >= 0
}

// find returns the index of ch in subs, or -1. Caller holds mu.
func (s *session) find(ch string) int {
	for i, sb := range s.subs {
		if sb.c.name == ch {
			return i
		}
	}
	return -1
}

func (s *session) subscribe(req *request) {
	start := s.hub.startTimer()
	if !s.checkChannel(req) || !s.inStanding(req) {
		return
	}
	checked := s.client.ident.Load() // what the subscribe is authorized against
	if !s.subscribed(req.ch) {
		if err := s.authorizeSubscribe(req.ch); err != nil {
			s.sendErr(req, codeOf(err, CodeForbidden), err.Error())
			return
		}
	}
	info, err := s.presenceInfo(req.ch, req.info)
	if err != nil {
		s.sendErr(req, CodeTooLarge, err.Error())
		return
	}
	req.info = info // checked and copied: the since path takes it from req
	if req.hasSince && !s.subscribed(req.ch) {
		s.subscribeSince(req, start, checked)
		return
	}
	t, isNew, err := s.join(req.ch, false, info)
	if err != nil {
		s.sendErr(req, codeOf(err, CodeBadRequest), err.Error())
		return
	}
	if isNew && !s.stillAllowed(req, checked) {
		return
	}
	if isNew {
		s.hub.events.subscribed(&s.client, req.ch)
	}
	// A repeated sub waits like the first: the first may still be waiting
	// for the cluster, and this ack promises the same.
	s.hub.awaitInterest(s, *req, t, start)
}

// stillAllowed checks a new subscription again when a refresh replaced
// the connection's identity between its authorization and its join: the
// refresh checked the channels the connection was in, and this one may
// have joined too late for that. Refused, it is left and answered with the
// refusal.
func (s *session) stillAllowed(req *request, checked *Identity) bool {
	if s.client.ident.Load() == checked {
		return true
	}
	if err := s.authorizeSubscribe(req.ch); err != nil {
		s.leave(req.ch)
		s.sendErr(req, codeOf(err, CodeForbidden), err.Error())
		return false
	}
	return true
}

// inStanding refuses a request with err 503 while the node is not a member
// in good standing: its ack would promise cluster-wide what cannot arrive.
func (s *session) inStanding(req *request) bool {
	err := s.hub.relay.Standing()
	if err == nil {
		return true
	}
	s.hub.metrics.unavailable.Add(1)
	s.sendErr(req, CodeUnavailable, "cluster unavailable: "+err.Error())
	return false
}

func (s *session) unsubscribe(req *request) {
	if !s.checkChannel(req) {
		return
	}
	if s.leave(req.ch) {
		s.hub.events.unsubscribed(&s.client, req.ch)
	}
	s.ack(req)
}

func (s *session) publish(req *request) {
	if !s.checkChannel(req) {
		return
	}
	if req.data == nil {
		s.hub.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, `pub needs "data"`)
		return
	}
	if limit := s.hub.live().MaxDataSize; len(req.data) > limit {
		s.sendErr(req, CodeTooLarge, fmt.Sprintf("data is larger than the limit: %d bytes, at most %d", len(req.data), limit))
		return
	}
	if !s.publishAllowed() {
		s.sendErr(req, CodeRateLimited, "publish rate limit exceeded")
		return
	}
	if err := s.authorizePublish(req.ch, req.data); err != nil {
		s.sendErr(req, codeOf(err, CodeForbidden), err.Error())
		return
	}
	if !s.inStanding(req) {
		return
	}
	if _, ok := s.hub.limits(req.ch); !ok {
		s.hub.publish(req.ch, req.data, "", nil)
		s.ack(req)
		return
	}
	// On a channel with history the ack waits until enough nodes hold the
	// publish to survive one node's death.
	id, hasID := req.id, req.hasID
	s.hub.publish(req.ch, req.data, "", func(err error) {
		if err != nil {
			s.hub.metrics.notStored.Add(1)
			s.sendErr(&request{id: id, hasID: hasID}, CodeUnavailable, "published, but not stored on enough nodes to survive a node's death: "+err.Error())
			return
		}
		if hasID {
			s.send(ackFrame(id))
		}
	})
}

func (s *session) checkChannel(req *request) bool {
	reason := validChannel(req.ch)
	if reason == "" {
		return true
	}
	s.hub.metrics.badRequests.Add(1)
	s.sendErr(req, CodeBadRequest, reason)
	return false
}

func (s *session) ack(req *request) {
	if req.hasID {
		s.send(ackFrame(req.id))
	}
}

// subAck acks a sub. On a channel with history the ack carries the
// position the subscription starts at: a client that gets no message
// before its connection drops resumes from there (sub with since) and
// recovers what it missed, instead of being told gap.
func (s *session) subAck(req *request) {
	if !req.hasID {
		return
	}
	if pos, ok := s.hub.startPos(req.ch); ok {
		s.send(ackPosFrame(req.id, pos))
		return
	}
	s.send(ackFrame(req.id))
}

// send queues a frame; a full queue has already closed the connection as a
// slow consumer, and a closed one needs nothing more.
func (s *session) send(frame []byte) {
	if err := s.conn.Send(frame); err != nil && !errors.Is(err, transport.ErrClosed) && !errors.Is(err, transport.ErrQueueFull) {
		s.hub.log.Debug("send failed", slog.String("client", s.client.id), slog.Any("err", err))
	}
}

// setPending counts a subscribe of ch waiting for (+1) or done with (-1)
// the cluster's confirmation. Only called once waits exists.
func (s *session) setPending(ch string, delta int) {
	q := s.waits.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.unconfirmed == nil {
		q.unconfirmed = make(map[string]int)
	}
	if q.unconfirmed[ch] += delta; q.unconfirmed[ch] <= 0 {
		delete(q.unconfirmed, ch)
	}
}

// confirmedOn reports whether every sub of ch by this session was acked.
func (s *session) confirmedOn(ch string) bool {
	if s.waiting.Load() == 0 {
		return true
	}
	q := s.waits.Load() // not nil: something waited
	s.mu.Lock()
	defer s.mu.Unlock()
	return q.unconfirmed[ch] == 0
}

func quoteForReason(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return string(appendQuoted(nil, s))
}
