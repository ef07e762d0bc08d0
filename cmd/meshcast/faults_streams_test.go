//go:build faults

package main

import (
	"sync"
	"time"
)

// event is one delivery a subscriber received: a message, or a gap.
type event struct {
	gap bool
	pub string // publisher stream (messages)
	seq int
	at  time.Time
}

// subStream is one subscription on one connection, from dial to its end.
// A client that reconnects starts a new stream.
type subStream struct {
	name string
	home int // the node its client started on
	node int // the node this connection is to
	gen  int // 1 for the client's first connection, 2 after a reconnect...

	mu      sync.Mutex
	events  []event
	ackAt   time.Time // zero until the sub is acked
	ackPos  int       // events received before the ack
	subErrs map[int]int
	endAt   time.Time
	endErr  error // nil while connected
	byTest  bool  // ended because the test closed it
	badData []string
}

func newSubStream(name string, home, node int) *subStream {
	return &subStream{name: name, home: home, node: node, subErrs: map[int]int{}}
}

func (s *subStream) add(e event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

func (s *subStream) acked(at time.Time) {
	s.mu.Lock()
	if s.ackAt.IsZero() {
		s.ackAt, s.ackPos = at, len(s.events)
	}
	s.mu.Unlock()
}

func (s *subStream) refused(code int) {
	s.mu.Lock()
	s.subErrs[code]++
	s.mu.Unlock()
}

func (s *subStream) end(at time.Time, err error, byTest bool) {
	s.mu.Lock()
	s.endAt, s.endErr, s.byTest = at, err, byTest
	s.mu.Unlock()
}

func (s *subStream) note(bad string) {
	s.mu.Lock()
	s.badData = append(s.badData, bad)
	s.mu.Unlock()
}

// live reports whether the stream is subscribed and connected.
func (s *subStream) live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ackAt.IsZero() && s.endAt.IsZero()
}

// lastSeqs returns the highest sequence received from each publisher.
func (s *subStream) lastSeqs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, e := range s.events {
		if !e.gap && e.seq > out[e.pub] {
			out[e.pub] = e.seq
		}
	}
	return out
}

// countFrom returns how many messages of pub arrived after since.
func (s *subStream) countFrom(pub string, since time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if !e.gap && e.pub == pub && !e.at.Before(since) {
			n++
		}
	}
	return n
}

// Answers to a publish.
const (
	unanswered = 0
	ackedPub   = 200 // any other value is the err code
)

// pubStream is one publisher connection: every publish it sent, with its
// answer. seq n is at index n-1.
type pubStream struct {
	name string
	home int
	node int
	gen  int

	mu       sync.Mutex
	sentAt   []time.Time
	answer   []int
	answerAt []time.Time
	reasons  map[int]string // one reason per err code
	endAt    time.Time
	endErr   error
	byTest   bool
	badData  []string
}

func newPubStream(name string, home, node int) *pubStream {
	return &pubStream{name: name, home: home, node: node, reasons: map[int]string{}}
}

// next records a publish about to be sent and returns its sequence.
func (p *pubStream) next() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sentAt = append(p.sentAt, time.Now())
	p.answer = append(p.answer, unanswered)
	p.answerAt = append(p.answerAt, time.Time{})
	return len(p.sentAt)
}

// answered records the answer to seq: ackedPub or an err code.
func (p *pubStream) answered(seq, code int, reason string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq < 1 || seq > len(p.answer) || p.answer[seq-1] != unanswered {
		p.badData = append(p.badData, "an answer for a publish never sent or already answered")
		return
	}
	p.answer[seq-1], p.answerAt[seq-1] = code, at
	if code != ackedPub && p.reasons[code] == "" {
		p.reasons[code] = reason
	}
}

func (p *pubStream) end(at time.Time, err error, byTest bool) {
	p.mu.Lock()
	p.endAt, p.endErr, p.byTest = at, err, byTest
	p.mu.Unlock()
}

func (p *pubStream) live() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endAt.IsZero()
}

// pending returns how many publishes have no answer yet.
func (p *pubStream) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.answer {
		if a == unanswered {
			n++
		}
	}
	return n
}

// lastAckedAfter returns the highest acked seq sent after t, or 0.
func (p *pubStream) lastAckedAfter(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.answer) - 1; i >= 0; i-- {
		if p.answer[i] == ackedPub && p.sentAt[i].After(t) {
			return i + 1
		}
	}
	return 0
}

// answeredAny reports whether any publish got an answer.
func (p *pubStream) answeredAny() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.answer {
		if a != unanswered {
			return true
		}
	}
	return false
}
