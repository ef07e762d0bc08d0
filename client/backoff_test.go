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
