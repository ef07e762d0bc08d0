package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// tokenSource is a GetToken that hands out t1, t2, ... and records the
// calls; block, when set, makes call n wait for its context instead.
type tokenSource struct {
	mu    sync.Mutex
	n     int
	block func(n int) bool
	fail  func(n int) error
	errs  []error // what each blocked call's context ended with
}

func (s *tokenSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.n++
	n, block, fail := s.n, s.block, s.fail
	s.mu.Unlock()
	if block != nil && block(n) {
		<-ctx.Done()
		s.mu.Lock()
		s.errs = append(s.errs, ctx.Err())
		s.mu.Unlock()
		return "", ctx.Err()
	}
	if fail != nil {
		if err := fail(n); err != nil {
			return "", err
		}
	}
	return fmt.Sprint("t", n), nil
}

// ended is what the contexts of the blocked calls ended with.
func (s *tokenSource) ended() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func (s *tokenSource) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// in is the Unix time d from now, as a hello's or an ack's expires.
func in(d time.Duration) func() int64 {
	return func() int64 { return time.Now().Add(d).Unix() }
}

// refreshes are the tokens of the refresh requests f received, in order.
func (f *fake) refreshes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.received {
		if m["op"] == "refresh" {
			tok, _ := m["token"].(string)
			out = append(out, tok)
		}
	}
	return out
}

// refreshAt is when c's connection refreshes its token next (or did
// last); zero when none is scheduled, refresher false without one.
func refreshAt(c *Client) (at time.Time, refresher bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refresh == nil {
		return time.Time{}, false
	}
	return c.refresh.at, true
}

func near(got, want time.Time, within time.Duration) bool {
	d := got.Sub(want)
	return d > -within && d < within
}

func TestRefreshDelay(t *testing.T) {
	for _, tc := range []struct{ left, want time.Duration }{
		{2 * time.Hour, 2*time.Hour - time.Minute}, // at most 60 s before
		{time.Hour, time.Hour - time.Minute},       //
		{100 * time.Second, 90 * time.Second},      // a tenth before
		{30 * time.Second, 25 * time.Second},       // at least 5 s before
		{5 * time.Second, 0},                       // less left: at once
		{3 * time.Second, 0},                       //
		{-time.Second, 0},                          // past already
		{500 * time.Second, 450 * time.Second},     // 50 s before
	} {
		if got := refreshDelay(tc.left); got != tc.want {
			t.Errorf("refreshDelay(%v) = %v, want %v", tc.left, got, tc.want)
		}
	}
}

func TestRefreshFrame(t *testing.T) {
	got := string(request{op: "refresh", token: `a"b`}.encode(7))
	if want := `{"op":"refresh","id":7,"token":"a\"b"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// A client whose clock is an hour behind the node's: the hello's expires
// looks an hour and 3 s away, but its ttl says 3 s, and the client
// counts from that: it refreshes at once.
func TestRefreshCountsFromTTL(t *testing.T) {
	f := startFake(t, newStore(10))
	ttl := int64(3)
	f.set(func(f *fake) { f.expires, f.ttl, f.ackExpires = in(time.Hour+3*time.Second), &ttl, in(time.Hour) })
	var ts tokenSource
	cfg := testConfig(f.URL)
	cfg.GetToken = ts.get
	connect(t, cfg)
	waitFor(t, 5*time.Second, "a refresh", func() bool { return len(f.refreshes()) == 1 })
}

// A hello with expires near: the client sends GetToken's next token at
// once, on the same connection, and schedules the next refresh from the
// ack's expires (60 s before it, for an hour's token). A subscription and
// publishes go on around it.
func TestRefreshBeforeExpiry(t *testing.T) {
	f := startFake(t, newStore(10))
	f.set(func(f *fake) { f.expires, f.ackExpires = in(3*time.Second), in(time.Hour) })
	var ts tokenSource
	var ev events
	cfg := testConfig(f.URL)
	cfg.GetToken, cfg.OnEvent = ts.get, ev.on
	c := connect(t, cfg)
	s := subscribe(t, c, "a")
	waitFor(t, 5*time.Second, "a refresh", func() bool { return len(f.refreshes()) == 1 })
	if got := f.refreshes()[0]; got != "t2" {
		t.Fatalf("refreshed with %q, want GetToken's second token t2 (t1 dialled)", got)
	}
	hour := time.Now().Add(time.Hour)
	waitFor(t, 5*time.Second, "the next refresh scheduled from the ack", func() bool {
		at, _ := refreshAt(c)
		return near(at, hour.Add(-time.Minute), 3*time.Second)
	})
	if err := c.Publish(context.Background(), "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if m := next(t, s); string(m.Data) != "1" || m.Gap {
		t.Fatalf("got %+v", m)
	}
	if n := len(ev.of(EventConnected)); n != 1 || len(ev.of(EventDisconnected)) != 0 || len(ev.of(EventError)) != 0 {
		t.Fatalf("events %+v", ev.all)
	}
	if f.count("sub", "a") != 1 {
		t.Fatal("the refresh disturbed the subscription")
	}
}

// Each ack's expires schedules the next refresh: a token that lives 3 s
// is refreshed again and again, halfway through its life; an ack with no
// expires ends it.
func TestRefreshAckReschedules(t *testing.T) {
	f := startFake(t, newStore(10))
	var acks int
	f.set(func(f *fake) {
		f.expires = in(3 * time.Second)
		f.ackExpires = func() int64 {
			acks++ // called under f.mu
			if acks == 4 {
				return 0
			}
			return in(3 * time.Second)()
		}
	})
	var ts tokenSource
	cfg := testConfig(f.URL)
	cfg.GetToken = ts.get
	c := connect(t, cfg)
	waitFor(t, 15*time.Second, "four refreshes", func() bool { return len(f.refreshes()) == 4 })
	if got := sprint(f.refreshes()); got != "[t2 t3 t4 t5]" {
		t.Fatalf("tokens %s", got)
	}
	waitFor(t, 5*time.Second, "no refresh scheduled after an ack without expires", func() bool {
		at, ok := refreshAt(c)
		return ok && at.IsZero()
	})
}

// A refresh the node refuses (503) is an EventError wrapping ErrRefresh
// and the *Error, and is tried again, with another token, while the old
// one is still valid; so is one whose GetToken fails. A 400 (nothing to
// refresh) is not tried again.
func TestRefreshErrorRetried(t *testing.T) {
	for _, tc := range []struct {
		name    string
		codes   []int
		failGet bool
		want    func(error) bool
	}{
		{"503", []int{503}, false, func(err error) bool {
			var se *Error
			return errors.As(err, &se) && se.Code == 503
		}},
		{"GetToken", nil, true, func(err error) bool { return errors.Is(err, errNoToken) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, newStore(10))
			f.set(func(f *fake) {
				f.expires, f.ackExpires, f.failRefresh = in(5*time.Second), in(time.Hour), tc.codes
			})
			ts := tokenSource{fail: func(n int) error {
				if tc.failGet && n == 2 {
					return errNoToken
				}
				return nil
			}}
			var ev events
			cfg := testConfig(f.URL)
			cfg.GetToken, cfg.OnEvent = ts.get, ev.on
			c := connect(t, cfg)
			e := ev.wait(t, EventError, 1)[0]
			if !errors.Is(e.Err, ErrRefresh) || !tc.want(e.Err) {
				t.Fatalf("error event %v", e.Err)
			}
			at, _ := refreshAt(c)
			if exp := time.Unix(in(5*time.Second)(), 0); at.IsZero() || !at.Before(exp) {
				t.Fatalf("retry at %v, want before the expiry %v", at, exp)
			}
			waitFor(t, 10*time.Second, "the retry's ack", func() bool {
				at, _ := refreshAt(c)
				return near(at, time.Now().Add(time.Hour-time.Minute), 3*time.Second)
			})
			want := "[t2 t3]"
			if tc.failGet {
				want = "[t3]"
			}
			if got := sprint(f.refreshes()); got != want {
				t.Fatalf("refreshes %s, want %s", got, want)
			}
			if len(ev.of(EventConnected)) != 1 {
				t.Fatalf("events %+v", ev.all)
			}
		})
	}
	t.Run("400", func(t *testing.T) {
		f := startFake(t, newStore(10))
		f.set(func(f *fake) { f.expires, f.failRefresh = in(time.Second), []int{400} })
		var ts tokenSource
		var ev events
		cfg := testConfig(f.URL)
		cfg.GetToken, cfg.OnEvent = ts.get, ev.on
		c := connect(t, cfg)
		e := ev.wait(t, EventError, 1)[0]
		var se *Error
		if !errors.Is(e.Err, ErrRefresh) || !errors.As(e.Err, &se) || se.Code != 400 {
			t.Fatalf("error event %v", e.Err)
		}
		if at, ok := refreshAt(c); !ok || !at.IsZero() {
			t.Fatalf("a retry after a 400 is scheduled at %v", at)
		}
	})
}

var errNoToken = errors.New("token service down")

// A refresh needs both GetToken and a hello with expires: a client with
// both refreshes; one with a static token, or a hello without expires,
// sends none and schedules none.
func TestRefreshNeedsGetTokenAndExpires(t *testing.T) {
	expiring := startFake(t, newStore(10))
	expiring.set(func(f *fake) { f.expires, f.ackExpires = in(2*time.Second), in(time.Hour) })
	plain := startFake(t, newStore(10))
	var ts tokenSource

	both := testConfig(expiring.URL)
	both.GetToken = ts.get
	connect(t, both)
	waitFor(t, 5*time.Second, "the refresh of a client with both", func() bool { return len(expiring.refreshes()) == 1 })

	static := testConfig(expiring.URL)
	static.Token = "fixed"
	noGetToken := connect(t, static)
	noExpires := testConfig(plain.URL)
	noExpires.GetToken = ts.get
	noHello := connect(t, noExpires)
	for _, c := range []*Client{noGetToken, noHello} {
		// A round trip after the hello: a refresh at once would be sent
		// before the answer was read.
		if err := c.Publish(context.Background(), "x", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		if _, ok := refreshAt(c); ok {
			t.Fatal("a refresh is scheduled")
		}
	}
	if n := len(expiring.refreshes()); n != 1 || len(plain.refreshes()) != 0 {
		t.Fatalf("refreshes: %d and %d, want 1 and 0", n, len(plain.refreshes()))
	}
}

// Close ends a refresh in flight (its GetToken's context) and waits for
// it; a lost connection does too, and the next one schedules its own.
func TestRefreshStops(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		f := startFake(t, newStore(10))
		f.set(func(f *fake) { f.expires = in(2 * time.Second) })
		ts := tokenSource{block: func(n int) bool { return n == 2 }}
		cfg := testConfig(f.URL)
		cfg.GetToken = ts.get
		c := connect(t, cfg)
		waitFor(t, 5*time.Second, "the refresh's GetToken", func() bool { return ts.calls() == 2 })
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the refresh's GetToken")
		}
		if errs := ts.ended(); len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Fatalf("GetToken's context ended with %v", errs)
		}
		if _, ok := refreshAt(c); ok || len(f.refreshes()) != 0 {
			t.Fatal("a refresh after Close")
		}
	})
	t.Run("reconnect", func(t *testing.T) {
		f := startFake(t, newStore(10))
		// The first connection's refresh waits in GetToken; the second
		// connection expires in an hour.
		hellos := 0
		f.set(func(f *fake) {
			f.expires = func() int64 {
				hellos++ // called under f.mu
				if hellos == 1 {
					return in(2 * time.Second)()
				}
				return in(time.Hour)()
			}
		})
		ts := tokenSource{block: func(n int) bool { return n == 2 }}
		var ev events
		cfg := testConfig(f.URL)
		cfg.GetToken, cfg.OnEvent = ts.get, ev.on
		c := connect(t, cfg)
		waitFor(t, 5*time.Second, "the refresh's GetToken", func() bool { return ts.calls() == 2 })
		c.mu.Lock()
		first := c.refresh
		c.mu.Unlock()
		f.kill()
		ev.wait(t, EventConnected, 2)
		if err := first.ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("the lost connection's refresh goes on: %v", err)
		}
		waitFor(t, 5*time.Second, "the blocked GetToken to end", func() bool { return len(ts.ended()) == 1 })
		if errs := ts.ended(); !errors.Is(errs[0], context.Canceled) {
			t.Fatalf("GetToken's context ended with %v", errs)
		}
		f.set(func(f *fake) {
			if got := sprint(f.auths); got != "[t1 t3]" {
				t.Fatalf("dialled with %s", got)
			}
		})
		at, ok := refreshAt(c)
		if !ok || !near(at, time.Now().Add(time.Hour-time.Minute), 3*time.Second) {
			t.Fatalf("the new connection's refresh is at %v (%v)", at, ok)
		}
		if len(f.refreshes()) != 0 || len(ev.of(EventError)) != 0 {
			t.Fatalf("refreshes %v, events %+v", f.refreshes(), ev.all)
		}
	})
}

// A refresh whose timer fired as its connection was detached (its context
// ended) must not call GetToken: the call is for nothing, and the
// reconnect's GetToken waits for it. getToken's select chose at random
// between a free semaphore and the ended context.
func TestRefreshOfAGoneConnectionAsksNoToken(t *testing.T) {
	f := startFake(t, newStore(10))
	var ts tokenSource
	cfg := testConfig(f.URL)
	cfg.GetToken = ts.get
	c := connect(t, cfg)
	c.mu.Lock()
	r := &refresher{cn: c.conn}
	c.mu.Unlock()
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.cancel()
	for range 50 {
		c.refreshNow(r, time.Now().Add(time.Hour))
	}
	if n := ts.calls(); n != 1 {
		t.Fatalf("GetToken called %d times, want 1 (the dial)", n)
	}
}
