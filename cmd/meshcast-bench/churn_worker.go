package main

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// churnCounts are one churn step's counters in a worker; the stat path
// reads them while attempts run.
type churnCounts struct {
	attempts, ok, dialErrs, subErrs atomic.Int64
	lastAck                         atomic.Int64 // unix nanos of the latest subscribe ack
}

// startChurn runs one churn step: an attempt (connect, open, subscribe,
// wait for the ack, close) is due every 1/rate seconds, at most rc.Conc at
// once; a late attempt starts when a slot frees, so a server that cannot
// keep up shows as a rate below the target. evChurnDone follows when the
// step's attempts have all ended.
func (w *worker) startChurn(rc runCmd) {
	st := new(stepHists)
	w.step.Store(st)
	w.churn.Store(new(churnCounts))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		cc := w.churn.Load()
		w.runChurn(rc, st, cc)
		e := w.stat(evChurnDone)
		e.DoneNs = cc.lastAck.Load()
		w.emit(e)
	}()
}

func (w *worker) runChurn(rc runCmd, st *stepHists, cc *churnCounts) {
	if rc.Rate <= 0 {
		return
	}
	dur := time.Duration(rc.DurMs) * time.Millisecond
	n := int64(rc.Rate * dur.Seconds())
	interval := float64(time.Second) / rc.Rate
	start := time.Unix(0, rc.StartNs)
	sem := make(chan struct{}, max(rc.Conc, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := range n {
		due := start.Add(time.Duration(float64(k) * interval))
		if d := time.Until(due); d > 50*time.Microsecond {
			timer.Reset(d)
			select {
			case <-w.ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case sem <- struct{}{}:
		case <-w.ctx.Done():
			return
		}
		if time.Since(start) > dur+time.Second {
			<-sem
			return // too far behind: the rest would only measure the backlog
		}
		wg.Add(1)
		cc.attempts.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.churnOnce(int(k)*max(rc.Workers, 1)+w.id, rc.Sources, st, cc)
		}()
	}
}

// churnOnce is one connection's life. Latency is from the dial to the
// subscribe ack; the close handshake follows, outside the measurement.
func (w *worker) churnOnce(n, sources int, st *stepHists, cc *churnCounts) {
	t0 := time.Now()
	u := w.cfg.URLs[n%len(w.cfg.URLs)]
	c, err := dialWS(w.ctx, w.proto.wsURL(u), churnSource(u, n, sources), 1024,
		time.Duration(w.cfg.DialTimeout)*time.Millisecond)
	if err != nil {
		if !w.closing.Load() {
			cc.dialErrs.Add(1)
		}
		return
	}
	if !w.track(c) {
		c.close()
		return
	}
	defer w.untrack(c)
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Duration(w.cfg.AckTimeout) * time.Millisecond))
	if err := w.proto.open(c); err != nil {
		cc.dialErrs.Add(1) // the upgrade did not complete
		return
	}
	if err := w.awaitSub(c, quoteJSON(fmt.Sprintf("%s-%d", w.cfg.Channel, n%max(w.cfg.Rooms, 1)))); err != nil {
		if !w.closing.Load() {
			cc.subErrs.Add(1)
		}
		return
	}
	now := time.Now()
	st.shards[n%histShards].Record(uint64(now.Sub(t0)))
	cc.ok.Add(1)
	for last := cc.lastAck.Load(); now.UnixNano() > last && !cc.lastAck.CompareAndSwap(last, now.UnixNano()); {
		last = cc.lastAck.Load()
	}
	// Close cleanly, as a browser leaving would, and wait briefly for the
	// server's close so the server does the work of a real disconnect.
	if c.write(ws.OpClose, []byte{0x03, 0xe8}) == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			op, _, err := c.fr.next()
			if err != nil || op == ws.OpClose {
				return
			}
		}
	}
}

// awaitSub subscribes to chq and reads until the ack.
func (w *worker) awaitSub(c *wsConn, chq []byte) error {
	if err := c.write(ws.OpText, w.proto.appendSub(nil, chq, 1)); err != nil {
		return err
	}
	for {
		op, frame, err := c.fr.next()
		if err != nil {
			return err
		}
		if op.IsControl() {
			if closed, code := c.handleControl(op, frame); closed {
				return fmt.Errorf("closed with %d before the ack: %w", code, errBadFrame)
			}
			continue
		}
		for rest := frame; len(rest) > 0; {
			var msg []byte
			msg, rest = w.proto.next(rest)
			switch w.proto.kind(msg) {
			case kindAck:
				return nil
			case kindErr:
				return fmt.Errorf("subscribe refused: %.100s: %w", msg, errBadFrame)
			case kindPing:
				_ = c.write(ws.OpText, w.proto.pong())
			}
		}
	}
}

// churnSource spreads churn dials over sources loopback source addresses
// (127.0.0.2 ...) when the destination is IPv4 loopback: every closed
// connection leaves a port in TIME_WAIT for a minute, and one source
// address has only about 28,000 ephemeral ports.
func churnSource(rawURL string, n, sources int) *net.TCPAddr {
	if sources <= 0 || !loopbackV4(rawURL) {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+n%min(sources, 253)))}
}

// churnEvent adds a worker's churn counters to a stat event.
func (cc *churnCounts) fill(e *event) {
	if cc == nil {
		return
	}
	e.Attempts, e.Churned = cc.attempts.Load(), cc.ok.Load()
	e.ChurnDialErrs, e.ChurnSubErrs = cc.dialErrs.Load(), cc.subErrs.Load()
}
