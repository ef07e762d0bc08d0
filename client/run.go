package client

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// run keeps the client connected until it stops. first gets the outcome
// of the first connection (nil once connected).
func (c *Client) run(first chan<- error) {
	defer c.wg.Done()
	attempt, url, connected := 0, 0, false
	for {
		cn, err := c.dialOnce(url, attempt > 0 || connected)
		if c.ctx.Err() != nil {
			if cn != nil {
				cn.closeWith(1000, "")
			}
			return
		}
		if err != nil {
			if refusedForGood(err, c.cfg.GetToken == nil) {
				if !connected {
					first <- err
				}
				c.stop(err, &Event{Type: EventDisconnected, Code: 1006, Reason: err.Error(), Err: err})
				return
			}
			c.mu.Lock()
			c.lastErr = err // for Connect's error if its ctx ends first
			c.mu.Unlock()
			d := c.backoff(attempt, err)
			c.log.Debug("connection attempt failed", slog.Any("err", err), slog.Duration("retry_in", d))
			c.event(Event{Type: EventDisconnected, Code: 1006, Reason: err.Error(), Reconnect: true, Delay: d, Err: err})
			attempt++
			url++
			if !c.sleep(d) {
				return
			}
			continue
		}
		since := time.Now()
		if !c.attach(cn) {
			return
		}
		if !connected {
			connected = true
			first <- nil
		}
		code, reason := cn.readLoop(func(b []byte) { c.handle(cn, b) })
		cn.closeWith(1000, "")
		c.detach(code, reason)
		if c.ctx.Err() != nil {
			return
		}
		if code == 4003 || code == 4001 && c.cfg.GetToken == nil {
			err := &CloseError{Code: code, Reason: reason}
			c.stop(err, &Event{Type: EventDisconnected, Code: code, Reason: reason, Err: err})
			return
		}
		if time.Since(since) >= stableAfter {
			attempt = 0
		}
		d := c.delay(attempt)
		attempt++
		c.log.Debug("disconnected", slog.Int("code", code), slog.String("reason", reason), slog.Duration("retry_in", d))
		c.event(Event{Type: EventDisconnected, Code: code, Reason: reason, Reconnect: true, Delay: d})
		url++
		if !c.sleep(d) {
			return
		}
	}
}

// stableAfter is how long a connection must last for the backoff to
// start again from MinReconnectDelay. A node that closes connections as
// soon as they open is met with a growing backoff, as one that refuses
// them is.
const stableAfter = 10 * time.Second

// dialOnce fetches a token (GetToken, before every attempt but a first
// one that has Config.Token) and dials the url-th URL.
func (c *Client) dialOnce(url int, again bool) (*conn, error) {
	token := c.cfg.Token
	if c.cfg.GetToken != nil && (again || token == "") {
		t, err := c.getToken(c.ctx)
		if err != nil {
			return nil, err
		}
		token = t
	}
	return dial(c.ctx, &c.cfg, c.cfg.URLs[url%len(c.cfg.URLs)], token)
}

// refusedForGood: an upgrade refused for the token (401, 403) will be
// refused again unless GetToken can bring another.
func refusedForGood(err error, noGetToken bool) bool {
	var de *UpgradeError
	return noGetToken && errors.As(err, &de) && (de.Status == 401 || de.Status == 403)
}

// backoff is the wait after a failed attempt; a 503's Retry-After counts
// when there is no other URL to try.
func (c *Client) backoff(attempt int, err error) time.Duration {
	d := c.delay(attempt)
	var de *UpgradeError
	if errors.As(err, &de) && len(c.cfg.URLs) == 1 && de.RetryAfter > d {
		d = min(de.RetryAfter, c.cfg.MaxReconnectDelay)
	}
	return d
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// attach makes cn current: subscriptions are sent again first, then the
// requests that waited for a connection go.
func (c *Client) attach(cn *conn) bool {
	c.mu.Lock()
	if c.stopErr != nil {
		c.mu.Unlock()
		cn.closeWith(1000, "")
		return false
	}
	c.conn, c.hello = cn, cn.hello
	c.startRefreshLocked(cn)
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.reconnected()
		s.subscribeOn(cn)
	}
	c.mu.Lock()
	close(c.up)
	c.mu.Unlock()
	c.log.Debug("connected", slog.String("node", cn.hello.Node), slog.String("client", cn.hello.Client))
	c.event(Event{Type: EventConnected, Node: cn.hello.Node, ClientID: cn.hello.Client, User: cn.hello.User})
	return true
}

// detach forgets the connection that ended with code and reason:
// requests in flight fail with ErrConnectionLost, wrapped with them (or
// why the client stopped), subscriptions wait for the next attach.
func (c *Client) detach(code int, reason string) {
	c.mu.Lock()
	c.conn, c.hello = nil, nil
	c.stopRefreshLocked()
	c.up = make(chan struct{})
	waiting := c.waiting
	c.waiting = make(map[uint64]*pending)
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	// The close code says more than the loss: 1009 is a request over the
	// server's --max-message, which the server never read.
	why := fmt.Errorf("%w (closed: %d %s)", ErrConnectionLost, code, reason)
	if c.stopErr != nil {
		why = c.stopErr
	}
	c.mu.Unlock()
	for _, p := range waiting {
		p.done(nil, why)
	}
	for _, s := range subs {
		s.stopTimer()
	}
}

// handle is one message of the server, on cn's read goroutine.
func (c *Client) handle(cn *conn, b []byte) {
	f, err := decodeFrame(b)
	if err != nil {
		c.event(Event{Type: EventError, Err: err})
		return
	}
	switch f.Op {
	case "msg":
		if s := c.sub(f.Ch); s != nil {
			s.deliver(Message{Channel: f.Ch, Data: f.Data, Pos: f.Pos})
		}
	case "gap":
		if s := c.sub(f.Ch); s != nil {
			s.gap("server")
		} else {
			c.event(Event{Type: EventGap, Channel: f.Ch, Reason: "server"})
		}
	case "join", "leave":
		if s := c.sub(f.Ch); s != nil {
			s.deliver(Message{Channel: f.Ch, Join: f.Op == "join", Leave: f.Op == "leave", User: f.User, Info: f.Info})
		}
	case "err":
		e := &Error{Code: f.Code, Reason: f.Reason}
		if p := c.take(f.ID); p != nil {
			p.done(nil, e)
		} else {
			c.event(Event{Type: EventError, Err: e})
		}
	default: // ack, history, and the ops of later versions
		if p := c.take(f.ID); p != nil {
			p.done(f, nil)
		}
	}
}

func (c *Client) sub(ch string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[ch]
}

func (c *Client) take(id *uint64) *pending {
	if id == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.waiting[*id]
	delete(c.waiting, *id)
	return p
}
