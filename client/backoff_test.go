package client

import (
	"testing"
	"time"
)

// The reconnect cap doubles from MinReconnectDelay to MaxReconnectDelay
// and stays there, whatever the settings: a long MinReconnectDelay must
// not overflow into a negative cap (rand.N panics, on the client's own
// goroutine) or a zero one (reconnects with no wait at all).
func TestDelayCap(t *testing.T) {
	for _, tc := range []struct{ min, max time.Duration }{
		{10 * time.Millisecond, 100 * time.Millisecond},
		{500 * time.Millisecond, 20 * time.Second},
		{20 * time.Second, time.Minute}, // Min<<29 wraps negative
		{1 << 35, 1 << 40},              // Min<<29 wraps to exactly 0
		{time.Minute, time.Second},      // Min above Max
		{time.Hour, 1<<63 - 1},          // no useful maximum
	} {
		cfg := testConfig("ws://x")
		cfg.MinReconnectDelay, cfg.MaxReconnectDelay = tc.min, tc.max
		c := &Client{cfg: cfg.withDefaults()}
		prev := time.Duration(0)
		for n := range 100 {
			limit := c.delayCap(n)
			if limit <= 0 || limit > tc.max || limit < prev {
				t.Fatalf("min %v max %v: cap of attempt %d is %v (previous %v)", tc.min, tc.max, n, limit, prev)
			}
			prev = limit
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("min %v max %v: delay(%d) panicked: %v", tc.min, tc.max, n, r)
					}
				}()
				if d := c.delay(n); d < 0 || d > limit {
					t.Fatalf("min %v max %v: delay(%d) = %v, cap %v", tc.min, tc.max, n, d, limit)
				}
			}()
		}
		if want := min(tc.min, tc.max); c.delayCap(0) != want {
			t.Errorf("min %v max %v: first cap %v, want %v", tc.min, tc.max, c.delayCap(0), want)
		}
		if c.delayCap(99) != tc.max {
			t.Errorf("min %v max %v: cap after 99 attempts %v, want the maximum", tc.min, tc.max, c.delayCap(99))
		}
	}
}

// A node that accepts connections and closes each at once (crash-looping,
// or failing right after the hello) is reconnected to with a growing
// backoff, as a node that refuses them is: every connection that lasted
// only an instant used to restart it from MinReconnectDelay, so every
// client of such a node came back within MinReconnectDelay, forever.
func TestBackoffGrowsWhenConnectionsEndAtOnce(t *testing.T) {
	f := startFake(t, newStore(10))
	var ev events
	cfg := testConfig(f.URL)
	cfg.OnEvent = ev.on
	c := connect(t, cfg)
	f.set(func(f *fake) { f.hangUp = true })
	f.kill()
	d := ev.wait(t, EventDisconnected, 12)
	f.set(func(f *fake) { f.hangUp = false })
	// Full jitter under a cap that doubles from 10 ms to 100 ms: after the
	// fourth, all under 10 ms would be 9 draws in a row under a tenth of
	// the cap.
	longest := time.Duration(0)
	for _, e := range d[:12] {
		if !e.Reconnect {
			t.Fatalf("disconnected %+v, want a reconnect", e)
		}
		longest = max(longest, e.Delay)
	}
	if longest <= cfg.MinReconnectDelay {
		t.Fatalf("12 reconnects to a node that closes at once, every wait at most %v: no backoff", longest)
	}
	waitFor(t, 5*time.Second, "a connection that lasts", func() bool { return c.State() == Connected })
}
