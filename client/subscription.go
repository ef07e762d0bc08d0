package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Message is a delivery on a subscription, or a gap.
type Message struct {
	Channel string
	Data    json.RawMessage // the publisher's bytes, exactly; nil for a gap
	Pos     string          // on channels with history: resume after it with WithSince
	// Gap: messages may have been missed at this point. Reason says why:
	// "server" (the server's gap frame), "reconnect" (resubscribed without
	// a complete recovery; without a position, already when the server
	// refuses the resubscribe and it is retried), "not recovered" (WithSince, and the server
	// could not replay everything), "since refused" (the server refused
	// the position; subscribed without it), "overflow" (this subscription's
	// queue was full: the application read too slowly). A "reconnect" or
	// "not recovered" gap comes with the server's answer, after the
	// messages it did replay: what may be missing is older than those
	// (the history window moved on) or came around the resubscribe.
	Gap    bool
	Reason string
	// Join and Leave (channels whose namespace has join_leave=on): User's
	// first connection on the channel anywhere in the cluster, with its
	// Info, or the end of its last one. Data is nil.
	Join, Leave bool
	User        string
	Info        json.RawMessage
}

// SubscribeOption is an option of Subscribe.
type SubscribeOption func(*Subscription)

// WithCallback delivers to f, on the subscription's own goroutine, instead
// of the channel C (which is then nil). f may call Publish.
func WithCallback(f func(Message)) SubscribeOption {
	return func(s *Subscription) { s.cb = f }
}

// WithSince resumes after pos, a position from History or a Message: the
// server replays what came after it (on channels with history).
func WithSince(pos string) SubscribeOption {
	return func(s *Subscription) { s.pos = pos }
}

// Subscription is one channel's subscription. It lasts until Unsubscribe
// or the client's end, across reconnects.
type Subscription struct {
	// C delivers messages and gaps, in order; it is closed when the
	// subscription ends. Nil with WithCallback.
	C <-chan Message

	c     *Client
	ch    string
	info  []byte // presence info, sent with every sub (presence.go)
	cb    func(Message)
	out   chan Message
	wake  chan struct{} // pump has something to do
	ready chan struct{} // closed at the first ack
	done  chan struct{} // closed at the end

	mu         sync.Mutex
	queue      []Message // at most Config.Buffer, + 1 gap
	gapPending bool      // an overflow gap is owed
	dropped    uint64
	pos        string      // last position queued
	was        bool        // was subscribed: the next sub is a resubscribe
	attempt    int         // failed attempts, for the backoff of retries
	retry      *time.Timer // the next attempt after a 503
	timeout    *time.Timer // the sub in flight is not answered
	readyOnce  sync.Once
	doneOnce   sync.Once
	err        error
	lastErr    error // the last refusal retried (503, 429, no answer)
	gapGiven   bool  // the resubscribe's gap came early, at a refusal
	afterGap   bool  // a message came after that early gap: it no longer covers a later loss
}

// Subscribe subscribes to ch and returns once the server acked. While
// disconnected it waits for the connection; an err 503 or 429 is retried
// with backoff; other errors (403, 400) are returned as an *Error. ctx
// (or Config.RequestTimeout) bounds the wait; its error then wraps the
// last refusal too (errors.As finds the *Error 503). A channel name that
// is not UTF-8 is ErrBadChannel, bad WithInfo ErrBadData, before anything
// is sent.
func (c *Client) Subscribe(ctx context.Context, ch string, opts ...SubscribeOption) (*Subscription, error) {
	if err := checkChannel(ch); err != nil {
		return nil, err
	}
	s := &Subscription{
		c: c, ch: ch,
		wake:  make(chan struct{}, 1),
		ready: make(chan struct{}),
		done:  make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.info != nil && !validJSON(s.info) {
		// Sent as is, it would make the sub frame malformed: an err
		// without id, and a sub retried until ctx ends.
		return nil, ErrBadData
	}
	if s.cb == nil {
		s.out = make(chan Message)
		s.C = s.out
	}
	c.wire.Lock()
	c.mu.Lock()
	if c.stopErr != nil {
		c.mu.Unlock()
		c.wire.Unlock()
		return nil, c.stopErr
	}
	if _, dup := c.subs[ch]; dup {
		c.mu.Unlock()
		c.wire.Unlock()
		return nil, ErrDuplicate
	}
	c.subs[ch] = s
	cn := c.conn
	c.wg.Add(1)
	c.mu.Unlock()
	go s.pump()
	if cn != nil {
		s.subscribeOnLocked(cn)
	}
	c.wire.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	select {
	case <-s.ready:
		return s, nil
	case <-s.done:
		return nil, s.Err()
	case <-ctx.Done():
		s.Unsubscribe()
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		if last != nil {
			return nil, fmt.Errorf("client: subscribe %s: %w (last answer: %w)", ch, ctx.Err(), last)
		}
		return nil, fmt.Errorf("client: subscribe %s: %w", ch, ctx.Err())
	}
}

// Channel is the subscription's channel.
func (s *Subscription) Channel() string { return s.ch }

// Pos is the position of the last message received, which may still wait
// in the subscription's queue (Close and Unsubscribe drop what is queued);
// before any, where the subscription started (the server's ack says it);
// "" on a channel without history. To resume later with WithSince, keep the
// Pos of the last Message the application handled instead.
func (s *Subscription) Pos() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Dropped counts the messages dropped because the queue was full.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Err says why the subscription ended: nil after Unsubscribe, the
// server's *Error, or the client's end.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Unsubscribe ends the subscription and tells the server. Nothing is
// delivered after it returns but, with WithCallback, a call already
// running.
func (s *Subscription) Unsubscribe() error {
	c := s.c
	c.wire.Lock() // no sub of the channel goes out before this unsub
	defer c.wire.Unlock()
	c.mu.Lock()
	if c.subs[s.ch] != s {
		c.mu.Unlock()
		return nil
	}
	delete(c.subs, s.ch)
	cn := c.conn
	c.mu.Unlock()
	s.end(nil)
	if cn != nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.WriteTimeout)
		defer cancel()
		c.send(ctx, cn, request{op: "unsub", ch: s.ch}, func(*serverFrame, error) {})
	}
	return nil
}

// reconnected is told of a new connection before the resubscribe. An early
// gap covers what was missed until the next message; once one came, a
// loss after it is a new incident, and the next ack must say gap again.
func (s *Subscription) reconnected() {
	s.mu.Lock()
	if s.afterGap {
		s.gapGiven, s.afterGap = false, false
	}
	s.mu.Unlock()
}

// subscribeOn sends the sub on cn, with since = the last position,
// unless the subscription ended.
func (s *Subscription) subscribeOn(cn *conn) {
	s.c.wire.Lock()
	defer s.c.wire.Unlock()
	if s.c.sub(s.ch) != s {
		return // unsubscribed: its unsub may be on the wire already
	}
	s.subscribeOnLocked(cn)
}

// subscribeOnLocked is subscribeOn with c.wire held and s current.
func (s *Subscription) subscribeOnLocked(cn *conn) {
	s.mu.Lock()
	since := s.pos
	s.mu.Unlock()
	s.stopTimer()
	ctx, cancel := context.WithTimeout(s.c.ctx, s.c.cfg.WriteTimeout)
	defer cancel()
	id, ok := s.c.send(ctx, cn, request{op: "sub", ch: s.ch, since: since, info: s.info}, func(f *serverFrame, err error) {
		s.answer(cn, since, f, err)
	})
	if !ok {
		return // cn is gone: the next connection resubscribes
	}
	// The server answers within its interest wait (2 s); no answer at all
	// is retried like a 503.
	s.setTimer(&s.timeout, s.c.afterFunc(s.c.cfg.RequestTimeout, func() {
		if s.c.forget(id) {
			s.answer(cn, since, nil, errSubTimeout)
		}
	}))
}

var errSubTimeout = errors.New("client: no answer to sub in time")

// answer handles the server's answer to a sub sent on cn with since.
func (s *Subscription) answer(cn *conn, since string, f *serverFrame, err error) {
	c := s.c
	c.mu.Lock()
	current := c.subs[s.ch] == s && c.conn == cn
	c.mu.Unlock()
	if !current || errors.Is(err, ErrConnectionLost) {
		return // unsubscribed, or resubscribed on the next connection
	}
	s.stopTimer()
	var se *Error
	errors.As(err, &se)
	switch {
	case err == nil:
		if f.Pos != "" {
			// Where the subscription starts, on a channel with history: with
			// no message yet, the next resubscribe resumes from it.
			s.mu.Lock()
			if s.pos == "" {
				s.pos = f.Pos
			}
			s.mu.Unlock()
		}
		s.acked(since, f.Recovered)
	case se != nil && se.Code == 400 && since != "":
		s.mu.Lock()
		s.pos = ""
		s.mu.Unlock()
		s.gap("since refused")
		s.subscribeOn(cn)
	case se != nil && (se.Code == 503 || se.Code == 429) || errors.Is(err, errSubTimeout):
		c.event(Event{Type: EventError, Channel: s.ch, Err: fmt.Errorf("client: subscribe %s: %w", s.ch, err)})
		s.mu.Lock()
		d := c.delay(s.attempt)
		s.attempt++
		s.lastErr = err
		// A resubscribe without a position ends in a gap whenever it is
		// acked: say so now, not after the node's outage.
		early := s.was && since == "" && !s.gapGiven
		s.gapGiven = s.gapGiven || early
		s.mu.Unlock()
		if early {
			s.gap("reconnect")
		}
		s.setTimer(&s.retry, c.afterFunc(d, func() {
			c.mu.Lock()
			cur := c.conn
			c.mu.Unlock()
			if cur != nil && c.sub(s.ch) == s {
				s.subscribeOn(cur)
			}
		}))
	default:
		c.mu.Lock()
		if c.subs[s.ch] == s {
			delete(c.subs, s.ch)
		}
		c.mu.Unlock()
		c.event(Event{Type: EventError, Channel: s.ch, Err: fmt.Errorf("client: subscribe %s: %w", s.ch, err)})
		s.end(err)
	}
}

// acked records a successful sub; a resubscribe or a since that did not
// recover everything is a gap.
func (s *Subscription) acked(since string, recovered bool) {
	recovered = recovered && since != ""
	s.mu.Lock()
	resubscribe, given := s.was, s.gapGiven
	s.was, s.gapGiven, s.afterGap = true, false, false
	s.attempt = 0
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
	switch {
	case recovered, given:
	case resubscribe:
		s.gap("reconnect")
	case since != "":
		s.gap("not recovered")
	}
}

// setTimer replaces the timer in *field (guarded by mu), stopping the old one.
func (s *Subscription) setTimer(field **time.Timer, t *time.Timer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *field != nil {
		(*field).Stop()
	}
	*field = t
}

func (s *Subscription) stopTimer() {
	s.setTimer(&s.retry, nil)
	s.setTimer(&s.timeout, nil)
}

// deliver queues m for the application; past Config.Buffer it drops m
// and owes a gap.
func (s *Subscription) deliver(m Message) {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	if len(s.queue) >= s.c.cfg.Buffer {
		s.gapPending = true
		s.dropped++
		s.mu.Unlock()
		return
	}
	overflowed := s.gapPending
	if overflowed {
		s.queue = append(s.queue, Message{Channel: s.ch, Gap: true, Reason: "overflow"})
		s.gapPending = false
	}
	s.queue = append(s.queue, m)
	if m.Pos != "" {
		s.pos = m.Pos
	}
	s.afterGap = s.afterGap || (s.gapGiven && !m.Gap)
	s.mu.Unlock()
	if overflowed {
		s.c.event(Event{Type: EventGap, Channel: s.ch, Reason: "overflow"})
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// gap delivers a gap in order with the messages, and tells OnEvent.
func (s *Subscription) gap(reason string) {
	s.c.event(Event{Type: EventGap, Channel: s.ch, Reason: reason})
	s.deliver(Message{Channel: s.ch, Gap: true, Reason: reason})
}

// pump hands queued messages to C or the callback until the end.
func (s *Subscription) pump() {
	defer s.c.wg.Done()
	if s.out != nil {
		defer close(s.out)
	}
	for {
		s.mu.Lock()
		m, ok, overflow := Message{}, true, false
		switch {
		case len(s.queue) > 0:
			m = s.queue[0]
			s.queue[0] = Message{}
			s.queue = s.queue[1:]
		case s.gapPending:
			m = Message{Channel: s.ch, Gap: true, Reason: "overflow"}
			s.gapPending = false
			overflow = true
		default:
			ok = false
		}
		s.mu.Unlock()
		if overflow {
			s.c.event(Event{Type: EventGap, Channel: s.ch, Reason: "overflow"})
		}
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case <-s.done:
			return
		default:
		}
		if s.cb != nil {
			s.cb(m)
			continue
		}
		select {
		case s.out <- m:
		case <-s.done:
			return
		}
	}
}

// end stops the subscription with err (nil: unsubscribed).
func (s *Subscription) end(err error) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		s.err = err
		s.queue = nil
		s.mu.Unlock()
		s.stopTimer()
		close(s.done)
	})
}
