package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// probe is the legitimate traffic "flood" measures: subscribers on the
// attacked node, one publisher on another node at a steady rate (so every
// publish crosses a peer link into the attacked node), and a client that
// connects, subscribes and leaves every 200 ms (new clients must still get
// in). It runs from 127.0.0.1, which the attacks never use.
type probe struct {
	lat      atomicHist // publish to delivery, per delivery
	recv     atomic.Uint64
	sent     atomic.Uint64
	subs     atomic.Uint64 // subscribers that got their ack
	connect  atomicHist    // dial to sub ack of a new client
	connFail atomic.Uint64 // subscribers and check-ins that did not get in
}

type probeConfig struct {
	subURL, pubURL string
	subs           int
	rate           float64
	size           int
}

// runProbe subscribes cfg.subs clients, then publishes and checks in until
// ctx ends, and waits for its goroutines.
func runProbe(ctx context.Context, cfg probeConfig, p *probe) error {
	var wg sync.WaitGroup
	subCtx, stopSubs := context.WithCancel(context.Background())
	defer func() { stopSubs(); wg.Wait() }()
	for i := range cfg.subs {
		c, err := subscribeOnce(ctx, cfg.subURL, "legit", i)
		if err != nil { // the attack kept it out: counted, and the others go on
			p.connFail.Add(1)
			continue
		}
		p.subs.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.read(subCtx, c)
		}()
	}
	pub, err := subscribeOnce(ctx, cfg.pubURL, "", 0)
	for err != nil && ctx.Err() == nil { // kept out too: counted, and tried again
		p.connFail.Add(1)
		pub, err = subscribeOnce(ctx, cfg.pubURL, "", 0)
	}
	if err != nil {
		return nil // the phase ended with no publisher in
	}
	defer pub.nc.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.checkIns(ctx, cfg.subURL)
	}()
	p.publish(ctx, pub, cfg)
	// In-flight deliveries: give them a moment before the subscribers go.
	drain := time.NewTimer(2 * time.Second)
	defer drain.Stop()
	for p.recv.Load() < p.sent.Load()*p.subs.Load() {
		select {
		case <-drain.C:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// subscribeOnce dials url and, if ch is not empty, subscribes and waits
// for the ack.
func subscribeOnce(ctx context.Context, url, ch string, id int) (*wsConn, error) {
	c, err := dialWS(ctx, url, nil, 64<<10, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	if _, _, err := c.fr.next(); err != nil { // hello
		c.nc.Close()
		return nil, err
	}
	if ch == "" {
		return c, nil
	}
	if err := c.write(ws.OpText, fmt.Appendf(nil, `{"op":"sub","ch":%q,"id":%d}`, ch, id)); err != nil {
		c.nc.Close()
		return nil, err
	}
	for {
		_, msg, err := c.fr.next()
		if err != nil {
			c.nc.Close()
			return nil, err
		}
		switch opOf(msg) {
		case 'a':
			return c, nil
		case 'e':
			c.nc.Close()
			return nil, fmt.Errorf("sub refused: %.100s", msg)
		}
	}
}

// read records each delivery's latency until ctx ends.
func (p *probe) read(ctx context.Context, c *wsConn) {
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	defer stop()
	defer c.nc.Close()
	for {
		op, msg, err := c.fr.next()
		if err != nil {
			return
		}
		if op == ws.OpPing {
			_ = c.write(ws.OpPong, msg)
			continue
		}
		if t, _, _, ok := scanPayload(msg); ok && opOf(msg) == 'm' {
			p.recv.Add(1)
			p.lat.Record(uint64(max(0, time.Now().UnixNano()-t)))
		}
	}
}

// publish sends at cfg.rate until ctx ends; the publisher's own acks are
// read and dropped by a helper goroutine.
func (p *probe) publish(ctx context.Context, c *wsConn, cfg probeConfig) {
	done := make(chan struct{})
	go func() { // owned here: it ends when the connection closes below
		defer close(done)
		for {
			if _, _, err := c.fr.next(); err != nil {
				return
			}
		}
	}()
	defer func() { c.nc.Close(); <-done }()
	tk := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	defer tk.Stop()
	var buf []byte
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		buf = append(buf[:0], `{"op":"pub","ch":"legit","data":`...)
		buf = appendPayload(buf, time.Now().UnixNano(), seq, 0, cfg.size)
		buf = append(buf, '}')
		if c.write(ws.OpText, buf) != nil {
			return
		}
		p.sent.Add(1)
	}
}

// checkIns connects, subscribes and leaves every 200 ms until ctx ends.
func (p *probe) checkIns(ctx context.Context, url string) {
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		start := time.Now()
		c, err := subscribeOnce(ctx, url, fmt.Sprintf("check-%d", i), 1)
		if err != nil {
			if ctx.Err() == nil {
				p.connFail.Add(1)
			}
			continue
		}
		p.connect.Record(uint64(time.Since(start)))
		c.nc.Close()
	}
}
