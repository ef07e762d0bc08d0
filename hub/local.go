package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/meshcast/meshcast/internal/history"
)

// Message is a publish as an in-process subscriber (Hub.Subscribe) sees it.
type Message struct {
	Channel string
	// Data is one valid JSON value, shared with other subscribers: do not
	// modify it. Nil when Gap is set.
	Data []byte
	// Gap: messages on Channel may have been missed here, as a client's
	// gap frame says (guarantee 6).
	Gap bool
	// Pos, on a channel with history, is the position to resume from
	// after this message (Since), valid on every node of the cluster.
	Pos string
}

// Subscription is an in-process subscription made with Hub.Subscribe.
type Subscription struct {
	h  *Hub
	ch string
	fn func(Message)

	mu      sync.Mutex
	queue   []Message // bounded by maxLocalQueue
	dropped bool      // the queue overflowed: a Gap goes first when it drains
	closed  bool
	wake    chan struct{} // capacity 1
	// recovered: a Since subscription's catch-up was complete; set before
	// Subscribe returns.
	recovered bool
	done      chan struct{} // closed when the delivery goroutine has exited
}

// maxLocalQueue bounds the messages waiting for a slow in-process
// subscriber; past it they are dropped and it gets a Gap.
const maxLocalQueue = 4096

// Subscribe calls fn with every message published to ch anywhere in the
// cluster from when it returns, in each publisher's order, until the
// subscription is closed, ctx ends or the hub shuts down. It returns once
// the node is a member in good standing (Ready: a service may subscribe
// while its node is still joining) and every peer has confirmed, as a
// client's sub ack does; if one did not in time, a Gap follows. fn runs on a goroutine of the subscription, one call
// at a time; a subscriber slower than the publishes misses some and is
// told with a Gap, never slows the others.
func (h *Hub) Subscribe(ctx context.Context, ch string, fn func(Message), opts ...SubscribeOption) (*Subscription, error) {
	if fn == nil {
		// Refused here: called later, on the subscription's goroutine, it
		// would crash the process.
		return nil, errors.New("hub: Subscribe with a nil func")
	}
	if err := ctx.Err(); err != nil {
		return nil, err // as Publish; Ready returns at once without a cluster
	}
	if err := checkServerChannel(ch); err != nil {
		return nil, err
	}
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	var lim history.Limits
	var from history.Pos
	if o.hasSince {
		var ok bool
		if lim, ok = h.limits(ch); !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoHistory, quoteForReason(ch))
		}
		p, err := history.DecodePos(history.Place(ch), o.since)
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrBadPosition, posReason(err))
		}
		from = p
	}
	if err := h.Ready(ctx); err != nil {
		return nil, err
	}
	s := &Subscription{h: h, ch: ch, fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.histRef(ch, 1)
	h.wg.Add(1)
	go s.run(ctx)
	if o.hasSince {
		t, _ := h.relay.Subscribe(ch, h.presenceOn(ch))
		recovered, err := h.resume(ctx, ch, lim, from, t, localTarget{s})
		if err != nil {
			s.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		s.recovered = recovered
		return s, nil
	}
	h.reg.addLocal(ch, s)
	if t, confirmed := h.relay.Subscribe(ch, h.presenceOn(ch)); !confirmed {
		if err := h.relay.AwaitConfirmed(ctx, ch, t); err != nil {
			if ctx.Err() != nil {
				s.Close()
				return nil, ctx.Err()
			}
			s.push(Message{Channel: ch, Gap: true})
		}
	}
	return s, nil
}

// Recovered reports, for a subscription made with Since, whether it was
// sent everything published after the position that it did not have
// (false: some of it may be missing, as with a Gap).
func (s *Subscription) Recovered() bool { return s.recovered }

// Channel is the subscribed channel.
func (s *Subscription) Channel() string { return s.ch }

// Close ends the subscription and waits until fn has returned for the
// last time (so do not call it from fn). It is idempotent.
func (s *Subscription) Close() {
	s.stop()
	<-s.done
}

// stop ends the subscription without waiting for fn.
func (s *Subscription) stop() {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	if !closed {
		s.h.reg.removeLocal(s.ch, s)
		s.h.relay.Unsubscribe(s.ch)
		s.h.histRef(s.ch, -1)
		signal(s.wake)
	}
}

// push queues m for fn; it never blocks.
func (s *Subscription) push(m Message) {
	s.mu.Lock()
	switch {
	case s.closed:
	case len(s.queue) >= maxLocalQueue:
		s.dropped = true
	default:
		s.queue = append(s.queue, m)
	}
	s.mu.Unlock()
	signal(s.wake)
}

func (s *Subscription) run(ctx context.Context) {
	defer s.h.wg.Done()
	defer close(s.done)
	for {
		batch, ok := s.take()
		if !ok {
			return
		}
		for _, m := range batch {
			s.fn(m)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.stop()
			return
		case <-s.h.ctx.Done():
			s.stop()
			return
		}
	}
}

// take swaps out what is queued, a Gap first if messages were dropped.
func (s *Subscription) take() ([]Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	batch := s.queue
	s.queue = nil
	if s.dropped {
		s.dropped = false
		batch = append([]Message{{Channel: s.ch, Gap: true}}, batch...)
	}
	return batch, true
}

// signal does a non-blocking send on a capacity-1 wake-up channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
