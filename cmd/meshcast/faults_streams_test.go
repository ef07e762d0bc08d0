//go:build faults

package main

import (
	"strings"
	"sync"
	"time"
)

// event is one delivery a subscriber received: a message, or a gap. In a
// history client's spliced stream (faults_history_test.go), a seam is
// where one connection ended and the next began; it counts as a gap
// unless the next one's ack said recovered:true.
type event struct {
	gap  bool
	seam bool
	pub  string // publisher stream (messages)
	seq  int
	at   time.Time
}

// subStream is one subscription on one connection, from dial to its end.
// A client that reconnects starts a new stream.
type subStream struct {
	name   string
	client string // the logical client: sub1, hsub1 (its streams are <client>.<gen>)
	ch     string
	home   int    // the node its client started on
	node   int    // the node this connection is to
	gen    int    // 1 for the client's first connection, 2 after a reconnect...
	since  string // the position its sub resumed from ("" : none)

	mu     sync.Mutex
	subAt  time.Time // when its (first) sub was sent
	events []event
	ackAt  time.Time // zero until the sub is acked
	ackPos int       // events received before the ack
	// recovered is the ack's "recovered" (a sub with since), nil otherwise.
	recovered *bool
	lastPos   string // the pos of the last msg received
	subErrs   map[int]int
	endAt     time.Time
	endErr    error // nil while connected
	byTest    bool  // ended because the test closed it
	badData   []string
}

func newSubStream(name string, home, node int) *subStream {
	return &subStream{name: name, home: home, node: node, subErrs: map[int]int{}, ch: faultChannel}
}

func (s *subStream) add(e event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// addMsg records a message and the position it came with.
func (s *subStream) addMsg(e event, pos string) {
	s.mu.Lock()
	s.events = append(s.events, e)
	if pos != "" {
		s.lastPos = pos
	}
	s.mu.Unlock()
}

func (s *subStream) acked(at time.Time, recovered *bool) {
	s.mu.Lock()
	if s.ackAt.IsZero() {
		s.ackAt, s.ackPos, s.recovered = at, len(s.events), recovered
	}
	s.mu.Unlock()
}

// resumeFrom is the position the client's next connection resumes from:
// the last one received on this connection, else the one it resumed from.
func (s *subStream) resumeFrom() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastPos != "" {
		return s.lastPos
	}
	return s.since
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
	ch   string
	home int
	node int
	gen  int

	mu       sync.Mutex
	sentAt   []time.Time
	answer   []int
	answerAt []time.Time
	reasons  map[int]string // one reason per err code
	// notStored marks the publishes refused with err 503 "published, but
	// not stored on enough nodes" (channels with history): those may
	// arrive, once, where every other refused publish must not.
	notStored []bool
	endAt     time.Time
	endErr    error
	byTest    bool
	badData   []string
}

func newPubStream(name string, home, node int) *pubStream {
	return &pubStream{name: name, home: home, node: node, reasons: map[int]string{}, ch: faultChannel}
}

// next records a publish about to be sent and returns its sequence.
func (p *pubStream) next() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sentAt = append(p.sentAt, time.Now())
	p.answer = append(p.answer, unanswered)
	p.answerAt = append(p.answerAt, time.Time{})
	p.notStored = append(p.notStored, false)
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
	p.notStored[seq-1] = code == 503 && strings.HasPrefix(reason, notStoredReason)
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
