package client

import "log/slog"

// Config.OnEvent runs on a goroutine of its own, fed in order from a
// bounded queue: called on the goroutine that reads the connection (as it
// once was), an OnEvent that published or subscribed waited for an answer
// that only that goroutine could read.

// maxQueuedEvents bounds the events waiting for OnEvent. An OnEvent that
// keeps up never meets it; past it events are dropped and logged (gaps
// also reach the subscriptions, in order with their messages).
const maxQueuedEvents = 1024

func (c *Client) event(e Event) {
	if c.cfg.OnEvent == nil {
		return
	}
	c.evMu.Lock()
	if len(c.evQueue) >= maxQueuedEvents {
		c.evDropped++
		n := c.evDropped
		c.evMu.Unlock()
		c.log.Warn("OnEvent falls behind: event dropped", slog.Int("type", int(e.Type)), slog.Uint64("dropped", n))
		return
	}
	c.evQueue = append(c.evQueue, e)
	c.evMu.Unlock()
	select {
	case c.evWake <- struct{}{}:
	default:
	}
}

// eventLoop tells OnEvent about the queued events until the client stops
// and the queue is empty (stop queues its own event before that).
func (c *Client) eventLoop() {
	defer c.wg.Done()
	for {
		c.evMu.Lock()
		q := c.evQueue
		c.evQueue = nil
		c.evMu.Unlock()
		for _, e := range q {
			c.cfg.OnEvent(e)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-c.evWake:
		case <-c.ctx.Done():
			c.evMu.Lock()
			empty := len(c.evQueue) == 0
			c.evMu.Unlock()
			if empty {
				return
			}
		}
	}
}
