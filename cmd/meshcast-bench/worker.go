package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// histShards spreads latency recording over several atomic histograms so
// subscriber goroutines on different cores rarely touch the same line.
const histShards = 8

type stepHists struct {
	shards [histShards]atomicHist
	read   [histShards]atomicHist // --arrival kernel: the same deliveries timed at the read
	// With several URLs, the same deliveries split by where the subscriber
	// is: on the node its publisher published to, or on another node (the
	// publish crossed a peer link).
	local, remote [histShards]atomicHist
	// unstamped: --arrival kernel, frames whose read brought no kernel
	// timestamp, timed at the read instead.
	unstamped atomic.Int64
	// coalesced: --arrival kernel, deliveries that shared their read with
	// a later one: their stamp is the later one's, an upper bound.
	coalesced atomic.Int64
}

func (s *stepHists) snapshot() *Hist { return mergeShards(&s.shards) }

func mergeShards(shards *[histShards]atomicHist) *Hist {
	h := new(Hist)
	for i := range shards {
		shards[i].addTo(h)
	}
	return h
}

// counters are a subscriber's delivery counts, guarded by its mutex.
type counters struct {
	received, dups, reordered, lost, foreign int64
}

func (c *counters) add(o counters) {
	c.received += o.received
	c.dups += o.dups
	c.reordered += o.reordered
	c.lost += o.lost
	c.foreign += o.foreign
}

func (c counters) sub(o counters) counters {
	return counters{c.received - o.received, c.dups - o.dups, c.reordered - o.reordered, c.lost - o.lost, c.foreign - o.foreign}
}

// worker runs one process's share of the connections and answers the
// coordinator. Subscriber and publisher goroutines are owned by wg; the
// command loop is the only caller of the methods below except deliver.
type worker struct {
	id    int
	proto protocol
	cfg   setupCmd

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	outMu sync.Mutex
	enc   *json.Encoder

	connsMu sync.Mutex
	conns   map[*wsConn]struct{}
	closing atomic.Bool

	subs []*subscriber
	pubs []*publisher
	// pubNode maps a global publisher index to the index in cfg.URLs of
	// the node it publishes to (-1: none of them); nil with one URL.
	pubNode []int

	connected, acked, dialErrs, subErrs, disconnects atomic.Int64

	// --reader epoll: acknowledged subscribers are read by one poll loop.
	rawOnce sync.Once
	raw     *pollLoop
	rawErr  error

	step  atomic.Pointer[stepHists]
	churn atomic.Pointer[churnCounts] // current churn step, nil before the first

	baseMu  sync.Mutex
	base    counters // subscriber counters at the start of the step
	basePub int64
}

func newWorker(id int, out io.Writer) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{id: id, ctx: ctx, cancel: cancel, enc: json.NewEncoder(out), conns: map[*wsConn]struct{}{}}
	w.step.Store(new(stepHists))
	return w
}

// workerMain is the hidden "worker" subcommand: it reads commands until
// quit or until stdin closes (the coordinator is gone), then closes every
// connection and returns.
func workerMain(id int, in io.Reader, out io.Writer) error {
	w := newWorker(id, out)
	defer w.shutdown()
	dec := json.NewDecoder(in)
	for {
		var c command
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker %d: read command: %w", id, err)
		}
		switch c.Cmd {
		case cmdSetup:
			if err := w.startSetup(c.Setup); err != nil {
				w.emit(event{Ev: evFatal, Err: err.Error()})
			}
		case cmdRun:
			if c.Run != nil {
				w.startRun(*c.Run)
			}
		case cmdStat:
			w.emit(w.stat(evStat))
		case cmdCollect:
			w.collect(c.Ends)
		case cmdChurnStep:
			if c.Run != nil && w.proto != nil {
				w.startChurn(*c.Run)
			} else {
				w.emit(event{Ev: evFatal, Err: "churn before setup"})
			}
		case cmdQuit:
			return nil
		}
	}
}

func (w *worker) emit(e event) {
	e.Worker = w.id
	w.outMu.Lock()
	defer w.outMu.Unlock()
	_ = w.enc.Encode(e) // the coordinator going away ends the run through stdin
}

func (w *worker) tickStats() {
	defer w.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
			w.emit(w.stat(evStat))
		}
	}
}

// track registers a connection so shutdown can close it; false once the
// worker is shutting down.
func (w *worker) track(c *wsConn) bool {
	w.connsMu.Lock()
	defer w.connsMu.Unlock()
	if w.closing.Load() {
		return false
	}
	w.conns[c] = struct{}{}
	return true
}

func (w *worker) untrack(c *wsConn) {
	w.connsMu.Lock()
	delete(w.conns, c)
	w.connsMu.Unlock()
	c.close()
}

func (w *worker) shutdown() {
	w.connsMu.Lock()
	w.closing.Store(true)
	for c := range w.conns {
		c.close()
	}
	w.connsMu.Unlock()
	w.cancel()
	w.wg.Wait()
}

// totals sums the subscriber counters.
func (w *worker) totals() counters {
	var t counters
	for _, s := range w.subs {
		s.mu.Lock()
		t.add(s.cnt)
		s.mu.Unlock()
	}
	return t
}

func (w *worker) published() int64 {
	var n int64
	for _, p := range w.pubs {
		n += p.published.Load()
	}
	return n
}

// stat reports the connection counters and the current step's deliveries.
func (w *worker) stat(kind string) event {
	w.baseMu.Lock()
	d := w.totals().sub(w.base)
	pub := w.published() - w.basePub
	w.baseMu.Unlock()
	e := event{
		Ev: kind, Subs: len(w.subs),
		Connected: w.connected.Load(), Acked: w.acked.Load(), DialErrs: w.dialErrs.Load(),
		SubErrs: w.subErrs.Load(), Disconnects: w.disconnects.Load(),
		Received: d.received, Dups: d.dups, Reordered: d.reordered, Lost: d.lost, Foreign: d.foreign,
		Published: pub, Hist: w.step.Load().snapshot().toJSON(),
	}
	st := w.step.Load()
	if w.cfg.Arrival == arrivalKernel {
		e.ReadHist = mergeShards(&st.read).toJSON()
		e.Unstamped = st.unstamped.Load()
		e.Coalesced = st.coalesced.Load()
	}
	if w.pubNode != nil {
		e.LocalHist = mergeShards(&st.local).toJSON()
		e.RemoteHist = mergeShards(&st.remote).toJSON()
	}
	for _, p := range w.pubs {
		e.PubAcks += p.acks.Load()
		e.PubErrs += p.errs.Load()
	}
	w.churn.Load().fill(&e)
	return e
}

// startRun begins a step: new histograms and baselines, then every local
// publisher sends its share; evPubDone follows when all are done.
func (w *worker) startRun(rc runCmd) {
	w.baseMu.Lock()
	w.base = w.totals()
	w.basePub = w.published()
	w.step.Store(new(stepHists))
	w.baseMu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		var pwg sync.WaitGroup
		for _, p := range w.pubs {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				p.runStep(w.ctx, w, rc)
			}()
		}
		pwg.Wait()
		e := w.stat(evPubDone)
		e.Ends = map[int][]uint64{}
		for _, p := range w.pubs {
			e.Ends[p.idx] = p.ends()
		}
		w.emit(e)
	}()
}

// collect counts, for every subscribed connection, the messages each
// publisher sent in the step that never arrived, then reports the step.
func (w *worker) collect(ends []uint64) {
	for _, s := range w.subs {
		s.mu.Lock()
		if s.acked {
			nch := max(w.cfg.Rooms, 1)
			for p := range w.cfg.PubTotal {
				if i := p*nch + s.ch; i < len(ends) {
					s.cnt.lost += int64(s.trk.tail(p, ends[i]))
				}
			}
		}
		s.mu.Unlock()
	}
	w.emit(w.stat(evCollected))
}
