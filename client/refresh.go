package client

// Token refresh over the live connection (the refresh op): a connection
// whose hello says when its identity expires, on a client with GetToken,
// sends a fresh token before then. Without it the node closes the
// connection with 4001 at the expiry and the client reconnects: a gap on
// every channel without history, a presence leave and join, once per
// token lifetime.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

const (
	// refreshMinMargin and refreshMaxMargin bound how long before the
	// expiry a refresh goes: a tenth of the lifetime left, at least 5 s
	// (a GetToken and a round trip, with room to spare), at most 60 s.
	refreshMinMargin = 5 * time.Second
	refreshMaxMargin = 60 * time.Second
	// refreshRetryFloor: a failed refresh is tried again halfway to the
	// expiry, but not sooner than this, so that a failing GetToken or
	// node is not hammered when little time is left.
	refreshRetryFloor = 3 * time.Second
)

// refresher is the token refresh of one connection. Client.mu guards
// timer and at; the rest is set once.
type refresher struct {
	cn     *conn
	ctx    context.Context // ends when cn is detached or the client stops
	cancel context.CancelFunc
	timer  *time.Timer
	at     time.Time // when the last scheduled refresh goes (or went); zero: none is
}

// refreshDelay is the wait before refreshing an identity that expires in
// left: a margin of a tenth of left, within [refreshMinMargin,
// refreshMaxMargin], before the expiry; none if less than that is left.
func refreshDelay(left time.Duration) time.Duration {
	margin := min(max(left/10, refreshMinMargin), refreshMaxMargin)
	return max(left-margin, 0)
}

// expiryOf is when a frame (hello, a refresh's ack) says the identity
// expires, on this machine's clock: now plus its ttl, or, from a node that
// does not say ttl, its expires; zero for none.
func expiryOf(f *serverFrame) time.Time {
	if f.Expires > 0 && f.TTL != nil {
		return time.Now().Add(time.Duration(max(*f.TTL, 0)) * time.Second)
	}
	return expiresAt(f.Expires)
}

// expiresAt is a frame's expires as a time; zero for none.
func expiresAt(unix int64) time.Time {
	if unix <= 0 {
		return time.Time{}
	}
	return time.Unix(unix, 0)
}

// startRefreshLocked schedules the first refresh of cn, made current, when its
// hello says when it expires and there is a GetToken to ask. Called with
// c.mu held.
func (c *Client) startRefreshLocked(cn *conn) {
	exp := expiryOf(cn.hello)
	if c.cfg.GetToken == nil || exp.IsZero() {
		return
	}
	r := &refresher{cn: cn}
	r.ctx, r.cancel = context.WithCancel(c.ctx)
	c.refresh = r
	c.scheduleRefreshLocked(r, exp, refreshDelay(time.Until(exp)))
}

// stopRefreshLocked ends the current connection's refresh: its timer, and
// a GetToken or request in flight (their context). Called with c.mu held.
func (c *Client) stopRefreshLocked() {
	if r := c.refresh; r != nil {
		r.cancel()
		if r.timer != nil {
			r.timer.Stop()
		}
		c.refresh = nil
	}
}

// scheduleRefreshLocked arms r to refresh the identity expiring at exp
// in d, if r is still the current connection's. Called with c.mu held.
func (c *Client) scheduleRefreshLocked(r *refresher, exp time.Time, d time.Duration) {
	if c.refresh != r || r.ctx.Err() != nil {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.at = time.Now().Add(d)
	r.timer = c.afterFunc(d, func() { c.refreshNow(r, exp) })
}

// scheduleRefresh is scheduleRefreshLocked; with ok false it records
// that no refresh is scheduled.
func (c *Client) scheduleRefresh(r *refresher, exp time.Time, d time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		r.at = time.Time{}
		return
	}
	c.scheduleRefreshLocked(r, exp, d)
}

// refreshNow sends a fresh token for the identity expiring at exp, and
// schedules the next refresh: from the ack's expires, or, after a
// failure, halfway to exp while there is time left.
func (c *Client) refreshNow(r *refresher, exp time.Time) {
	next, err := c.sendRefresh(r)
	if r.ctx.Err() != nil || errors.Is(err, ErrConnectionLost) {
		return // the connection is gone; the next one starts afresh
	}
	if err == nil {
		// Not sooner than halfway: a token that lives less than the
		// margin is not refreshed in a loop. No expires (or one past
		// already, by this clock): nothing to schedule.
		left := time.Until(next)
		c.scheduleRefresh(r, next, max(refreshDelay(left), left/2), !next.IsZero() && left > 0)
		return
	}
	err = fmt.Errorf("%w: %w", ErrRefresh, err)
	left := time.Until(exp)
	d := max(left/2, refreshRetryFloor)
	var se *Error
	// A 400 is a node that has nothing to refresh, or does not know the
	// op: asking again changes nothing.
	retry := d < left && !(errors.As(err, &se) && se.Code == 400)
	c.log.Warn("token refresh failed", slog.Any("err", err), slog.Bool("retry", retry), slog.Duration("retry_in", d))
	c.scheduleRefresh(r, exp, d, retry)
	c.event(Event{Type: EventError, Err: err})
}

// sendRefresh asks GetToken for a token and sends it on r's connection;
// it returns the new expiry (zero: none) from the ack.
func (c *Client) sendRefresh(r *refresher) (time.Time, error) {
	token, err := c.getToken(r.ctx)
	if err != nil {
		return time.Time{}, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, c.cfg.RequestTimeout)
	defer cancel()
	ch := make(chan answer, 1)
	id, ok := c.send(ctx, r.cn, request{op: "refresh", token: token}, func(f *serverFrame, err error) { ch <- answer{f, err} })
	if !ok {
		return time.Time{}, ErrConnectionLost
	}
	select {
	case a := <-ch:
		if a.err != nil {
			return time.Time{}, a.err
		}
		return expiryOf(a.f), nil
	case <-ctx.Done():
		c.forget(id)
		return time.Time{}, fmt.Errorf("no answer: %w", ctx.Err())
	}
}

// getToken calls Config.GetToken, one call at a time (a refresh may still
// be asking when the connection drops and run asks for the next one),
// within DialTimeout.
func (c *Client) getToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	select {
	case c.tokenSem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("client: GetToken: %w", ctx.Err())
	}
	defer func() { <-c.tokenSem }()
	// select picks at random when both are ready: a refresh whose
	// connection went meanwhile (or a Close) must not ask.
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("client: GetToken: %w", err)
	}
	t, err := c.cfg.GetToken(ctx)
	if err != nil {
		return "", fmt.Errorf("client: GetToken: %w", err)
	}
	return t, nil
}
