package main

import (
	"context"
	"time"

	"github.com/gobwas/ws"
)

// runPublisherConn dials a publisher (round-robin over the publisher URLs,
// so with one URL per node there is one publisher per node) and keeps reading its acks until the
// connection ends; the step goroutines write on it.
func (w *worker) runPublisherConn(p *publisher, release func()) {
	urls := w.cfg.URLs
	if len(w.cfg.PubURLs) > 0 {
		urls = w.cfg.PubURLs
	}
	c, err := w.dialFrom(urls, p.idx, p.idx)
	if err != nil {
		if !w.closing.Load() {
			w.dialErrs.Add(1)
		}
		return
	}
	defer w.untrack(c)
	_ = c.nc.SetReadDeadline(time.Time{})
	w.connected.Add(1)
	p.c.Store(c)
	release()
	for {
		op, frame, err := c.fr.next()
		if err != nil {
			w.lostConn(nil, err)
			return
		}
		if op.IsControl() {
			if closed, _ := c.handleControl(op, frame); closed {
				w.lostConn(nil, nil)
				return
			}
			continue
		}
		for rest := frame; len(rest) > 0; {
			var msg []byte
			msg, rest = w.proto.next(rest)
			switch w.proto.kind(msg) {
			case kindAck:
				p.acks.Add(1)
			case kindErr:
				p.errs.Add(1)
			case kindPing:
				_ = c.write(ws.OpText, w.proto.pong())
			}
		}
	}
}

// runStep publishes rate messages/s for the step's duration. Message k is
// due at start + phase + k/rate, where the phase spreads the publishers
// evenly over one period, so the server sees a steady stream rather than
// bursts; a late publisher catches up by sending what is due.
func (p *publisher) runStep(ctx context.Context, w *worker, rc runCmd) {
	defer func() {
		p.endMu.Lock()
		copy(p.end, p.seq)
		p.endMu.Unlock()
	}()
	c := p.c.Load()
	if c == nil || rc.Rate <= 0 {
		return
	}
	dur := time.Duration(rc.DurMs) * time.Millisecond
	n := int64(rc.Rate * dur.Seconds())
	interval := float64(time.Second) / rc.Rate
	phase := time.Duration(interval * float64(p.idx) / float64(max(w.cfg.PubTotal, 1)))
	start := time.Unix(0, rc.StartNs).Add(phase)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := int64(0); k < n; {
		due := start.Add(time.Duration(float64(k) * interval))
		if d := time.Until(due); d > 50*time.Microsecond {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		now := time.Now()
		for ; k < n && !start.Add(time.Duration(float64(k)*interval)).After(now); k++ {
			if err := p.send(w, c, rc.Size); err != nil {
				return
			}
		}
	}
}

// ends returns the per-channel sequence ends after the last step.
func (p *publisher) ends() []uint64 {
	p.endMu.Lock()
	defer p.endMu.Unlock()
	return append([]uint64(nil), p.end...)
}

// send publishes the next message, to a random channel when there are
// several. The ack id only has to be unique per connection.
func (p *publisher) send(w *worker, c *wsConn, size int) error {
	ch := 0
	if len(p.seq) > 1 {
		ch = p.rnd.IntN(len(p.seq))
	}
	p.id++
	p.data = appendPayload(p.data[:0], time.Now().UnixNano(), p.seq[ch], p.idx, size)
	p.buf = w.proto.appendPub(p.buf[:0], p.chq[ch], p.id, p.data)
	if err := c.write(ws.OpText, p.buf); err != nil {
		return err
	}
	p.seq[ch]++
	p.published.Add(1)
	return nil
}
