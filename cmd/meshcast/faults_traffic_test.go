//go:build faults

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Client timings: how often a client retries a refused or failed connect
// or sub (a real client would back off; the suite wants precise figures),
// how long it keeps trying, and the publish interval (100 msg/s).
const (
	retryEvery     = 100 * time.Millisecond
	connectTimeout = 60 * time.Second
	publishEvery   = 10 * time.Millisecond
)

var errStopped = errors.New("stopped by the test")

// traffic runs the scenario's clients. A slot is one logical client (a
// publisher or a subscriber) homed on a node; each connection it makes is
// a new stream, so a reconnected client is checked as a new one.
type traffic struct {
	url       func(node int) string
	reconnect func(home int) int // node a client of home reconnects to; -1: it does not

	stop     chan struct{} // closed by stopAll
	pubStop  chan struct{} // closed by stopPublishing
	pubOnce  sync.Once
	stopping atomic.Bool
	wg       sync.WaitGroup // one per slot
	sendMu   sync.RWMutex   // read-held across each publish; stopPublishing waits them out

	mu         sync.Mutex
	conns      map[*wsConn]bool
	subs       []*subStream
	pubs       []*pubStream
	slotErrs   []string
	upgrade503 int
}

func newTraffic(url func(int) string, reconnect func(int) int) *traffic {
	return &traffic{url: url, reconnect: reconnect, stop: make(chan struct{}),
		pubStop: make(chan struct{}), conns: map[*wsConn]bool{}}
}

// slotKind is what a slot's client does: subscribe or publish, on which
// channel, and the prefix of its stream names.
type slotKind struct {
	role   string // "sub" or "pub"
	ch     string
	prefix string
}

// The clients of every scenario: the same traffic on a channel without
// history and on one with it. A history subscriber that reconnects
// resumes (sub with since) from the last position it received.
var (
	plainSub = slotKind{"sub", faultChannel, "sub"}
	plainPub = slotKind{"pub", faultChannel, "pub"}
	histSub  = slotKind{"sub", histChannel, "hsub"}
	histPub  = slotKind{"pub", histChannel, "hpub"}
)

// startSlot starts a client of kind k on node home.
func (tr *traffic) startSlot(k slotKind, home int) {
	tr.wg.Add(1)
	go tr.runSlot(k, home)
}

func (tr *traffic) runSlot(kind slotKind, home int) {
	defer tr.wg.Done()
	node := home
	since := "" // a history subscriber's position to resume from
	for k := 1; ; k++ {
		c, err := tr.connect(node)
		if err != nil {
			if !errors.Is(err, errStopped) {
				tr.slotError(fmt.Sprintf("%s%d.%d: %v", kind.prefix, home, k, err))
			}
			return
		}
		client := fmt.Sprintf("%s%d", kind.prefix, home)
		name := fmt.Sprintf("%s.%d", client, k)
		if kind.role == "sub" {
			s := newSubStream(name, home, node)
			s.client, s.ch, s.gen, s.since = client, kind.ch, k, since
			tr.subscribe(s, c)
			if kind.ch == histChannel {
				since = s.resumeFrom()
			}
		} else {
			p := newPubStream(name, home, node)
			p.ch, p.gen = kind.ch, k
			tr.publish(p, c)
		}
		if tr.stopping.Load() || (kind.role == "pub" && tr.publishingStopped()) {
			return
		}
		if node = tr.reconnect(home); node < 0 {
			return
		}
	}
}

// connect dials node until it accepts, the test stops, or connectTimeout.
func (tr *traffic) connect(node int) (*wsConn, error) {
	deadline := time.Now().Add(connectTimeout)
	for {
		c, err := dialWS(tr.url(node))
		if err == nil {
			if !tr.track(c) {
				c.close()
				return nil, errStopped
			}
			return c, nil
		}
		var se ws.StatusError
		if errors.As(err, &se) && se == 503 {
			tr.mu.Lock()
			tr.upgrade503++
			tr.mu.Unlock()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no connection to n%d within %v: last error %w", node, connectTimeout, err)
		}
		if !tr.pause(retryEvery) {
			return nil, errStopped
		}
	}
}

// pause waits d, or returns false at once when the test stops.
func (tr *traffic) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-tr.stop:
		return false
	}
}

// subscribe runs one subscriber stream until its connection ends.
func (tr *traffic) subscribe(s *subStream, c *wsConn) {
	tr.mu.Lock()
	tr.subs = append(tr.subs, s)
	tr.mu.Unlock()
	id := int64(1)
	s.mu.Lock()
	s.subAt = time.Now()
	s.mu.Unlock()
	err := c.write(subRequest(s.ch, id, s.since))
	for err == nil {
		var b []byte
		if b, err = c.read(); err == nil {
			err = tr.onSubFrame(s, c, b, &id)
		}
	}
	s.end(time.Now(), err, tr.stopping.Load())
	tr.untrack(c)
}

// onSubFrame records one frame; a refused sub is retried after a pause
// (with the same since).
func (tr *traffic) onSubFrame(s *subStream, c *wsConn, b []byte, id *int64) error {
	now := time.Now()
	var f serverFrame
	if err := json.Unmarshal(b, &f); err != nil {
		s.note(fmt.Sprintf("invalid JSON %q", b))
		return nil
	}
	switch {
	case f.Op == "msg" && f.Ch == s.ch && f.Data.P != "":
		if hist := s.ch == histChannel; hist != (f.Pos != "") {
			s.note(fmt.Sprintf("a msg with pos %q on %s (history: %v): %s", f.Pos, s.ch, hist, b))
		}
		s.addMsg(event{pub: f.Data.P, seq: f.Data.N, at: now}, f.Pos)
	case f.Op == "gap" && f.Ch == s.ch:
		s.add(event{gap: true, at: now})
	case f.Op == "ack" && f.ID != nil && *f.ID == *id:
		if (f.Recovered != nil) != (s.since != "") {
			s.note(fmt.Sprintf("ack of a sub with since %q: %s", s.since, b))
		}
		s.acked(now, f.Recovered)
	case f.Op == "err" && f.ID != nil && *f.ID == *id:
		s.refused(f.Code)
		if !tr.pause(retryEvery) {
			return errStopped
		}
		*id++
		return c.write(subRequest(s.ch, *id, s.since))
	case f.Op == "msg" || f.Op == "gap" || f.Op == "ack" || f.Op == "err":
		s.note(fmt.Sprintf("unexpected frame %s", b))
	} // other ops are later protocol versions': a v1 client ignores them
	return nil
}

// publish runs one publisher stream: 100 publishes a second until
// publishing stops or the connection ends, then it keeps reading answers
// until the connection ends.
func (tr *traffic) publish(p *pubStream, c *wsConn) {
	tr.mu.Lock()
	tr.pubs = append(tr.pubs, p)
	tr.mu.Unlock()
	readDone := make(chan error, 1)
	go func() { readDone <- readAnswers(p, c) }()
	err := tr.sendLoop(p, c, readDone)
	if err != nil {
		c.close()
	}
	if rerr := <-readDone; err == nil {
		err = rerr
	}
	p.end(time.Now(), err, tr.stopping.Load())
	tr.untrack(c)
}

func (tr *traffic) sendLoop(p *pubStream, c *wsConn, readDone chan error) error {
	tick := time.NewTicker(publishEvery)
	defer tick.Stop()
	for {
		select {
		case <-tr.pubStop:
			return nil
		case err := <-readDone:
			readDone <- err // publish reads it again
			return err
		case <-tick.C:
			if stopped, err := tr.sendOne(p, c); stopped || err != nil {
				return err
			}
		}
	}
}

// sendOne publishes the next seq, unless publishing has stopped.
func (tr *traffic) sendOne(p *pubStream, c *wsConn) (stopped bool, err error) {
	tr.sendMu.RLock()
	defer tr.sendMu.RUnlock()
	if tr.publishingStopped() {
		return true, nil
	}
	if err := c.write(pubRequest(p.ch, p.name, p.next())); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	return false, nil
}

// readAnswers records acks and errs until the connection ends.
func readAnswers(p *pubStream, c *wsConn) error {
	for {
		b, err := c.read()
		if err != nil {
			return err
		}
		now := time.Now()
		var f serverFrame
		switch err := json.Unmarshal(b, &f); {
		case err == nil && f.Op == "ack" && f.ID != nil:
			p.answered(int(*f.ID), ackedPub, "", now)
		case err == nil && f.Op == "err" && f.ID != nil:
			p.answered(int(*f.ID), f.Code, f.Reason, now)
		case err != nil || f.Op == "msg" || f.Op == "gap" || f.Op == "ack" || f.Op == "err":
			p.mu.Lock()
			p.badData = append(p.badData, fmt.Sprintf("unexpected frame %s", b))
			p.mu.Unlock()
		}
	}
}

func (tr *traffic) track(c *wsConn) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.stopping.Load() {
		return false
	}
	tr.conns[c] = true
	return true
}

func (tr *traffic) untrack(c *wsConn) {
	c.close()
	tr.mu.Lock()
	delete(tr.conns, c)
	tr.mu.Unlock()
}

func (tr *traffic) slotError(msg string) {
	tr.mu.Lock()
	tr.slotErrs = append(tr.slotErrs, msg)
	tr.mu.Unlock()
}

// stopPublishing stops every publisher; their answers still arrive. Once
// it returns, no publish is being sent or will be.
func (tr *traffic) stopPublishing() {
	tr.pubOnce.Do(func() { close(tr.pubStop) })
	//lint:ignore SA2001 the empty critical section waits for sends in progress
	tr.sendMu.Lock()
	tr.sendMu.Unlock()
}

func (tr *traffic) publishingStopped() bool {
	select {
	case <-tr.pubStop:
		return true
	default:
		return false
	}
}

// stopAll closes every connection and waits for every client goroutine.
func (tr *traffic) stopAll() {
	tr.stopPublishing()
	tr.mu.Lock()
	if !tr.stopping.Swap(true) {
		close(tr.stop)
	}
	for c := range tr.conns {
		c.close()
	}
	tr.mu.Unlock()
	tr.wg.Wait()
}

// streams returns a snapshot of every stream so far.
func (tr *traffic) streams() ([]*subStream, []*pubStream) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]*subStream(nil), tr.subs...), append([]*pubStream(nil), tr.pubs...)
}
