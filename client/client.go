package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"
)

// State is the client's connection state.
type State int

// States.
const (
	Connecting State = iota // dialling, or waiting to dial again
	Connected               // the hello arrived; requests go out at once
	Stopped                 // closed, or ended by the server (Err says why)
)

// Client is a connection to a meshcast cluster that reconnects,
// resubscribes and recovers (see the package doc).
type Client struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // ends at Close or stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // run, subscription pumps, timers that run

	// wire is held while a sub or unsub frame is written, with the check
	// of c.subs that decided it, so that the server sees the subs and
	// unsubs of a channel in the order the client's state changed. The
	// write under it is bounded by WriteTimeout, and nothing waits for an
	// answer under it. Lock order: wire, then mu, then Subscription.mu.
	wire sync.Mutex

	// mu guards the fields below.
	mu      sync.Mutex
	conn    *conn
	up      chan struct{} // closed while conn is set; replaced when it goes
	hello   *serverFrame
	subs    map[string]*Subscription
	waiting map[uint64]*pending // requests sent on conn, by id
	nextID  uint64
	stopErr error         // why the client stopped; nil while it runs
	lastErr error         // the last failed connection attempt
	stopped chan struct{} // closed when stopErr is set
	refresh *refresher    // the token refresh of conn; nil: none (refresh.go)

	// tokenSem is held while GetToken runs: one call at a time.
	tokenSem chan struct{}

	// evMu guards the events waiting for Config.OnEvent (events.go).
	evMu      sync.Mutex
	evQueue   []Event
	evDropped uint64
	evWake    chan struct{}
}

// pending is a request sent and not answered yet.
type pending struct {
	req  request
	done func(*serverFrame, error) // called once, never under mu
}

// Dial connects to one URL with the defaults of DefaultConfig.
func Dial(ctx context.Context, url string) (*Client, error) {
	cfg := DefaultConfig()
	cfg.URLs = []string{url}
	return Connect(ctx, cfg)
}

// Connect starts a client and returns once it is connected. Until then it
// tries each URL in turn with backoff; it gives up when ctx ends (saying
// what the last attempt met), or at once on an upgrade refused with 401 or
// 403 (a token problem) when there is no GetToken: an *UpgradeError. A
// URL that is not ws:// or wss:// is refused before any attempt. After
// Connect returns the client stays connected until Close.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("client: no URL")
	}
	for _, raw := range cfg.URLs {
		// A URL that can never work fails now, not when ctx ends.
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("client: URL %q: want ws://host[:port]/path or wss://...", raw)
		}
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		up:      make(chan struct{}),
		subs:    make(map[string]*Subscription),
		waiting: make(map[uint64]*pending),
		stopped: make(chan struct{}),
		evWake:  make(chan struct{}, 1),

		tokenSem: make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.OnEvent != nil {
		c.wg.Add(1)
		go c.eventLoop()
	}
	first := make(chan error, 1)
	c.wg.Add(1)
	go c.run(first)
	select {
	case err := <-first:
		if err == nil {
			return c, nil
		}
		c.Close()
		return nil, err
	case <-ctx.Done():
		c.Close()
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return nil, fmt.Errorf("client: connect: %w (last attempt: %w)", ctx.Err(), last)
		}
		return nil, fmt.Errorf("client: connect: %w", ctx.Err())
	}
}

// Close closes the connection, stops reconnecting, ends every
// subscription, and waits for the client's goroutines. Requests in
// flight return ErrClosed. Do not call it from a callback.
func (c *Client) Close() error {
	c.stop(ErrClosed, nil)
	c.wg.Wait()
	return nil
}

// Done is closed when the client stops: Close, or the server ending it.
func (c *Client) Done() <-chan struct{} { return c.stopped }

// Err says why the client stopped: ErrClosed, a *CloseError, or an
// *UpgradeError (401 or 403 on a reconnect, without GetToken); nil while
// it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErr
}

// State reports the connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopErr != nil:
		return Stopped
	case c.conn != nil:
		return Connected
	}
	return Connecting
}

// Node is the name of the node the client is connected to, "" while
// disconnected.
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hello == nil {
		return ""
	}
	return c.hello.Node
}

// stop ends the client with err once; the connection cn (or the current
// one) is closed.
func (c *Client) stop(err error, ev *Event) {
	c.mu.Lock()
	if c.stopErr != nil {
		c.mu.Unlock()
		return
	}
	c.stopErr = err
	close(c.stopped)
	cn := c.conn
	subs := c.subs
	c.subs = map[string]*Subscription{}
	c.mu.Unlock()
	if ev != nil {
		c.event(*ev) // before cancel, which ends eventLoop once it is told
	}
	c.cancel()
	if cn != nil {
		cn.closeWith(1000, "")
	}
	for _, s := range subs {
		s.end(err)
	}
}

// delay is the backoff before attempt n (0-based): full jitter, a random
// wait in [0, delayCap(n)).
func (c *Client) delay(n int) time.Duration {
	return rand.N(c.delayCap(n))
}

// delayCap is MinReconnectDelay doubled n times, at most
// MaxReconnectDelay. It doubles step by step up to the maximum: a shift
// by n wrapped around for long delays (a MinReconnectDelay of 20 s made
// the 30th attempt's cap negative, and rand.N panicked on the client's
// goroutine).
func (c *Client) delayCap(n int) time.Duration {
	limit, most := c.cfg.MinReconnectDelay, c.cfg.MaxReconnectDelay
	for ; n > 0 && limit < most; n-- {
		if limit > most/2 {
			limit = most
		} else {
			limit *= 2
		}
	}
	return min(limit, most)
}

// afterFunc runs f after d on its own goroutine, unless the client stops
// first; Close waits for a running f.
func (c *Client) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		c.mu.Lock()
		if c.stopErr != nil {
			c.mu.Unlock()
			return
		}
		c.wg.Add(1)
		c.mu.Unlock()
		defer c.wg.Done()
		f()
	})
}

// current waits for a connection (or ctx, or the client's end).
func (c *Client) current(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, up, err := c.conn, c.up, c.stopErr
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if cn != nil {
			return cn, nil
		}
		select {
		case <-up:
		case <-c.stopped:
		case <-ctx.Done():
			return nil, fmt.Errorf("client: no connection: %w", ctx.Err())
		}
	}
}

// send writes req on cn, and done gets its answer (or ErrConnectionLost
// when cn goes first). It returns the request's id, or false if cn is no
// longer the current connection.
func (c *Client) send(ctx context.Context, cn *conn, req request, done func(*serverFrame, error)) (uint64, bool) {
	c.mu.Lock()
	if c.conn != cn || cn == nil {
		c.mu.Unlock()
		return 0, false
	}
	c.nextID++
	id := c.nextID
	b := req.encode(id)
	// An unsub goes anyway: refused here, the node would keep the
	// subscription; on the node's 1009 it ends with the connection.
	if max := cn.hello.MaxMessage; max > 0 && len(b) > max && req.op != "unsub" {
		// The node would close the connection on it (1009), and every
		// subscription with it: this request alone fails, unsent. On a
		// goroutine, as every answer (the caller may hold c.wire), that
		// Close waits for as for a timer's (afterFunc).
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			done(nil, &Error{Code: 413, Reason: fmt.Sprintf("message too big: %d bytes, the node reads at most %d (its --max-message): not sent", len(b), max)})
		}()
		return id, true
	}
	c.waiting[id] = &pending{req: req, done: done}
	c.mu.Unlock()
	if err := cn.write(ctx, b); err != nil {
		if errors.Is(err, errNotWritten) {
			if c.forget(id) {
				done(nil, ctx.Err())
			}
			return id, true
		}
		// The write failed part way, or the connection is failing: it may
		// hold half a frame, so it is closed whatever ctx says. That ends
		// readLoop, and detach fails the request with ErrConnectionLost.
		cn.closeWith(1000, "")
	}
	return id, true
}

// forget drops a request; false if it was answered or failed already.
func (c *Client) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.waiting[id]
	delete(c.waiting, id)
	return ok
}

type answer struct {
	f   *serverFrame
	err error
}

// roundTrip sends req once connected and waits for its answer. A read is
// sent again after a lost connection; a publish never is.
func (c *Client) roundTrip(ctx context.Context, req request) (*serverFrame, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	for {
		cn, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		ch := make(chan answer, 1)
		id, ok := c.send(ctx, cn, req, func(f *serverFrame, err error) { ch <- answer{f, err} })
		if !ok {
			continue
		}
		select {
		case a := <-ch:
			if errors.Is(a.err, ErrConnectionLost) && isRead(req.op) {
				continue
			}
			return a.f, a.err
		case <-ctx.Done():
			c.forget(id)
			return nil, fmt.Errorf("client: %s: %w", req.op, ctx.Err())
		}
	}
}

// Publish sends data, one JSON value passed byte-exact, to every
// subscriber of ch and returns on the server's ack. Data that is not one
// JSON value in valid UTF-8 is ErrBadData, a channel name that is not
// UTF-8 ErrBadChannel, and neither is sent. While disconnected it
// waits for the connection, within ctx and Config.RequestTimeout. It is
// never retried: an *Error means not published; ErrConnectionLost or a
// context error may or may not have been.
func (c *Client) Publish(ctx context.Context, ch string, data []byte) error {
	if err := checkChannel(ch); err != nil {
		return err
	}
	if !validJSON(data) {
		return ErrBadData
	}
	_, err := c.roundTrip(ctx, request{op: "pub", ch: ch, data: data})
	return err
}

// PublishJSON marshals v and publishes it.
func (c *Client) PublishJSON(ctx context.Context, ch string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return c.Publish(ctx, ch, b)
}

// History returns the last messages of ch, oldest first, at most limit
// (0: the server's default). A server or channel without history answers
// with an *Error 400.
func (c *Client) History(ctx context.Context, ch string, limit int) ([]HistoryMessage, error) {
	if err := checkChannel(ch); err != nil {
		return nil, err
	}
	f, err := c.roundTrip(ctx, request{op: "history", ch: ch, limit: limit})
	if err != nil {
		return nil, err
	}
	return f.Msgs, nil
}
