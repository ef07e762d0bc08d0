package main

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// subscriber is one subscribing connection. Its goroutine owns the
// connection; mu guards the tracker and counters, which the command loop
// reads for stats and the tail count.
type subscriber struct {
	g   int // global index: picks URL, source address and (idle) channel
	ch  int // channel index (rooms), 0 otherwise
	url int // index into the URLs
	chq []byte

	mu    sync.Mutex
	acked bool
	trk   seqTracker
	cnt   counters
}

// publisher is one publishing connection. seq and the buffers belong to
// the step goroutine; the reader goroutine only counts acks.
type publisher struct {
	idx int // global publisher index, the "p" of the payload
	c   atomic.Pointer[wsConn]
	chq [][]byte // per channel

	// Owned by the step goroutine: sequence numbers run per channel, so a
	// subscriber (which sees one channel) sees 0, 1, 2, ... from each
	// publisher.
	seq       []uint64
	id        uint64
	rnd       *rand.Rand
	data, buf []byte

	endMu     sync.Mutex
	end       []uint64 // copy of seq after the last step
	published atomic.Int64
	acks      atomic.Int64
	errs      atomic.Int64
}

// startSetup dials every connection of this worker in the background and
// emits evReady once each is subscribed (or connected, for publishers) or
// has failed.
func (w *worker) startSetup(sc *setupCmd) error {
	if w.proto != nil {
		return fmt.Errorf("setup: already set up")
	}
	if sc == nil || len(sc.URLs) == 0 {
		return fmt.Errorf("setup: no urls")
	}
	for _, u := range sc.URLs {
		if _, err := url.Parse(u); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	p, err := protocolByName(sc.Proto)
	if err != nil {
		return err
	}
	w.proto, w.cfg = p, *sc
	w.cfg.ReadBuf = max(w.cfg.ReadBuf, 1024)
	w.cfg.DialConc = max(w.cfg.DialConc, 1)
	chans := channelNames(sc)
	for i := range sc.SubCount {
		g := sc.SubFirst + i
		s := &subscriber{g: g, url: g % len(sc.URLs), trk: newSeqTracker(sc.PubTotal)}
		switch {
		case sc.OwnChannel:
			s.chq = quoteJSON(sc.Channel + "-" + strconv.Itoa(g))
		case sc.Rooms > 0:
			s.ch = min(g/max(sc.RoomSize, 1), sc.Rooms-1)
			s.chq = chans[s.ch]
			if sc.CrossEvery <= 0 || s.ch%sc.CrossEvery != 0 {
				s.url = s.ch % len(sc.URLs) // the whole room on one node
			}
		default:
			s.chq = chans[0]
		}
		w.subs = append(w.subs, s)
	}
	if len(sc.URLs) > 1 {
		w.pubNode = pubNodes(sc)
	}
	for i := range sc.PubCount {
		idx := sc.PubFirst + i
		w.pubs = append(w.pubs, &publisher{idx: idx, chq: chans, seq: make([]uint64, len(chans)),
			end: make([]uint64, len(chans)), rnd: rand.New(rand.NewPCG(uint64(idx), uint64(time.Now().UnixNano())))})
	}
	w.wg.Add(2)
	go w.tickStats() // after the lists are built: it reads them
	go w.connectAll()
	return nil
}

// pubNodes maps each global publisher index to the index in sc.URLs of
// the node it publishes to, -1 if that is not one of them. Publishers dial
// round-robin over the publisher URLs (runPublisherConn).
func pubNodes(sc *setupCmd) []int {
	out := make([]int, sc.PubTotal)
	for p := range out {
		if len(sc.PubURLs) == 0 {
			out[p] = p % len(sc.URLs)
			continue
		}
		out[p] = slices.Index(sc.URLs, sc.PubURLs[p%len(sc.PubURLs)])
	}
	return out
}

// channelNames returns the quoted channel names publishers use: one, or
// Channel-0 ... Channel-(Rooms-1).
func channelNames(sc *setupCmd) [][]byte {
	if sc.Rooms <= 0 {
		return [][]byte{quoteJSON(sc.Channel)}
	}
	out := make([][]byte, sc.Rooms)
	for i := range out {
		out[i] = quoteJSON(sc.Channel + "-" + strconv.Itoa(i))
	}
	return out
}

func (w *worker) connectAll() {
	defer w.wg.Done()
	sem := make(chan struct{}, w.cfg.DialConc)
	var ready sync.WaitGroup
	start := func(run func(release func())) bool {
		select {
		case sem <- struct{}{}:
		case <-w.ctx.Done():
			return false
		}
		ready.Add(1)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var once sync.Once
			release := func() { once.Do(func() { <-sem; ready.Done() }) }
			defer release()
			run(release)
		}()
		return true
	}
	for _, p := range w.pubs {
		if !start(func(release func()) { w.runPublisherConn(p, release) }) {
			return
		}
	}
	for _, s := range w.subs {
		if !start(func(release func()) { w.runSubscriber(s, release) }) {
			return
		}
	}
	ready.Wait()
	w.emit(w.stat(evReady))
}

// dial opens connection number g (subscriber or publisher) with the
// round-robin URL and source address, and runs the protocol's opening.
func (w *worker) dial(g, urlIdx int) (*wsConn, error) {
	return w.dialFrom(w.cfg.URLs, g, urlIdx)
}

func (w *worker) dialFrom(urls []string, g, urlIdx int) (*wsConn, error) {
	n := len(urls)
	u := urls[urlIdx%n]
	src := sourceAddr(u, g/n, w.cfg.PerDest)
	c, err := dialWS(w.ctx, w.proto.wsURL(u), src, w.cfg.ReadBuf, time.Duration(w.cfg.DialTimeout)*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if !w.track(c) {
		c.close()
		return nil, fmt.Errorf("worker closing")
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Duration(w.cfg.AckTimeout) * time.Millisecond))
	if err := w.proto.open(c); err != nil {
		w.untrack(c)
		return nil, err
	}
	return c, nil
}

func (w *worker) runSubscriber(s *subscriber, release func()) {
	c, err := w.dial(s.g, s.url)
	if err != nil {
		if !w.closing.Load() {
			w.dialErrs.Add(1)
		}
		return
	}
	defer w.untrack(c)
	w.connected.Add(1)
	if err := c.write(ws.OpText, w.proto.appendSub(nil, s.chq, 1)); err != nil {
		w.subErrs.Add(1)
		return
	}
	for {
		op, frame, err := c.fr.next()
		if err != nil {
			w.lostConn(s, err)
			return
		}
		if op.IsControl() {
			if closed, _ := c.handleControl(op, frame); closed {
				w.lostConn(s, nil)
				return
			}
			continue
		}
		handOff := false
		for rest := frame; len(rest) > 0; {
			var msg []byte
			msg, rest = w.proto.next(rest)
			switch w.proto.kind(msg) {
			case kindMsg:
				w.deliver(s, msg)
			case kindAck:
				w.markAcked(s, c, release)
				handOff = w.cfg.Reader == readerEpoll || w.cfg.Reader == readerUring
			case kindErr:
				if !s.isAcked() {
					w.subErrs.Add(1)
					return
				}
			case kindPing:
				_ = c.write(ws.OpText, w.proto.pong())
			}
		}
		// After the frame's last message: the poll loop takes the stream
		// from the next frame on.
		if handOff && w.handOff(s, c) {
			return
		}
	}
}

func (s *subscriber) isAcked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

func (w *worker) markAcked(s *subscriber, c *wsConn, release func()) {
	s.mu.Lock()
	was := s.acked
	s.acked = true
	s.mu.Unlock()
	if !was {
		_ = c.nc.SetReadDeadline(time.Time{})
		w.acked.Add(1)
		release()
	}
}

// lostConn counts a connection that ended while the worker was not closing
// it: a subscribe timeout before the ack, a disconnect after.
func (w *worker) lostConn(s *subscriber, _ error) {
	if w.closing.Load() {
		return
	}
	if s != nil && !s.isAcked() {
		w.subErrs.Add(1)
		return
	}
	w.disconnects.Add(1)
}

// deliver is the per-message hot path: scan, classify, count, record.
func (w *worker) deliver(s *subscriber, msg []byte) {
	w.deliverAt(s, msg, 0, time.Now().UnixNano())
}

// deliverAt is deliver for a message read at read that arrived at arrival
// (unix nanoseconds; 0: no kernel timestamp, the read is the arrival). It
// reports whether the delivery was timed (not a duplicate or foreign).
func (w *worker) deliverAt(s *subscriber, msg []byte, arrival, read int64) bool {
	t, seq, p, ok := scanPayload(msg)
	s.mu.Lock()
	if !ok {
		s.cnt.foreign++
		s.mu.Unlock()
		return false
	}
	res, missed := s.trk.observe(p, seq)
	switch res {
	case seqInOrder:
		s.cnt.received++
	case seqGap:
		s.cnt.received++
		s.cnt.lost += int64(missed)
	case seqLate:
		s.cnt.received++
		s.cnt.reordered++
		s.cnt.lost--
	case seqDup:
		s.cnt.dups++
	default:
		s.cnt.foreign++
	}
	s.mu.Unlock()
	if res <= seqLate {
		st := w.step.Load()
		if w.cfg.Arrival == arrivalKernel {
			st.read[s.g%histShards].Record(uint64(max(read-t, 0)))
			if arrival == 0 {
				st.unstamped.Add(1)
			}
		}
		if arrival == 0 {
			arrival = read
		}
		lat := uint64(max(arrival-t, 0))
		st.shards[s.g%histShards].Record(lat)
		if w.pubNode != nil {
			if p < len(w.pubNode) && w.pubNode[p] == s.url {
				st.local[s.g%histShards].Record(lat)
			} else {
				st.remote[s.g%histShards].Record(lat)
			}
		}
	}
	return res <= seqLate
}
