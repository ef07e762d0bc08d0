package hub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpdateSecurity swaps every live setting in turn while one client
// stays connected: each change applies to its next request, and the
// connection is never dropped.
func TestUpdateSecurity(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"chat:a","id":1}`)
	l := h.live()
	base := *l

	// Namespaces: chat becomes server-publish only.
	next := base
	next.Security.Namespaces = map[string]Namespace{"chat": {Publish: PublishNobody}}
	mustUpdate(t, h, next)
	mustErr(t, c, `{"op":"pub","ch":"chat:a","data":1,"id":2}`, 403)

	// Limits: one subscription, 1 KiB of data, a publish rate.
	next = base
	next.MaxSubscriptions = 1
	next.MaxDataSize = 1024
	next.Security.PublishRate, next.Security.PublishBurst = 1, 1
	mustUpdate(t, h, next)
	mustErr(t, c, `{"op":"sub","ch":"other","id":3}`, 429)
	mustErr(t, c, `{"op":"pub","ch":"chat:a","data":"`+strings.Repeat("x", 1100)+`","id":4}`, 413)
	c.MustAck(`{"op":"pub","ch":"p","data":1,"id":5}`)
	mustErr(t, c, `{"op":"pub","ch":"p","data":2,"id":6}`, 429)

	// Connection limit: c holds the only slot, counted before the limit.
	next = base
	next.Security.MaxConnections = 1
	mustUpdate(t, h, next)
	mustRefuse(t, url, http.StatusServiceUnavailable, "too many connections")

	// Origins and an Authenticator: for the next upgrades.
	next = base
	next.AllowedOrigins = []string{"https://app.example"}
	next.Authenticator = hmacVerifier(t)
	mustUpdate(t, h, next)
	if st, _ := refusal(t, url, http.Header{"Origin": {"https://evil.example"}}); st != 403 {
		t.Fatalf("foreign origin after update: %d", st)
	}
	mustRefuse(t, url, 401, "missing token")
	d := dial(t, withToken(url, hs256(t, claims("ann", time.Hour))))
	d.MustAck(`{"op":"sub","ch":"x","id":1}`)

	// Back to the start; c was there all along.
	mustUpdate(t, h, base)
	c.MustAck(`{"op":"sub","ch":"other","id":7}`)
	st := h.Stats()
	if st.RefusedLimit != 1 || st.RefusedOrigin != 1 || st.RefusedAuth != 1 || st.Sessions != 2 {
		t.Fatalf("stats after updates: %+v", st)
	}
	if st.ErrCodes["403"] != 1 || st.ErrCodes["413"] != 1 || st.ErrCodes["429"] != 2 || st.ErrCodes["other"] != 0 {
		t.Fatalf("err codes %v", st.ErrCodes)
	}
}

func mustUpdate(t *testing.T, h *Hub, l Live) {
	t.Helper()
	if err := h.UpdateSecurity(l); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateSecurityRefusesNegative(t *testing.T) {
	h, _ := testHub(t, DefaultConfig())
	for _, l := range []Live{{MaxDataSize: -1}, {MaxSubscriptions: -1}, {Security: SecurityConfig{PublishRate: -1}}, {Security: SecurityConfig{MaxConnections: -1}}} {
		if err := h.UpdateSecurity(l); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: %v", l, err)
		}
	}
	if got := h.live().MaxDataSize; got != DefaultConfig().MaxDataSize {
		t.Fatalf("a refused update changed MaxDataSize to %d", got)
	}
}

// TestUpdateSecurityConcurrent: updates racing with subscribes and
// publishes (the race detector checks the swap).
func TestUpdateSecurityConcurrent(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = h.UpdateSecurity(Live{MaxSubscriptions: 100 + i%2, Security: SecurityConfig{Namespaces: map[string]Namespace{"": {}}}})
		}
	}()
	for range 200 {
		c.MustAck(`{"op":"sub","ch":"x","id":1}`)
		c.MustAck(`{"op":"pub","ch":"y","data":1,"id":2}`)
	}
	close(stop)
	wg.Wait()
}

// recordingObserver counts what the hub reports.
type recordingObserver struct{ subs, pubs atomic.Int64 }

func (o *recordingObserver) SubscribeAcked(d time.Duration) {
	if d >= 0 {
		o.subs.Add(1)
	}
}
func (o *recordingObserver) PublishQueued(d time.Duration) {
	if d >= 0 {
		o.pubs.Add(1)
	}
}

func TestObserver(t *testing.T) {
	var o recordingObserver
	cfg := DefaultConfig()
	cfg.Observer = &o
	h, url := testHub(t, cfg)
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"x","id":1}`)
	c.MustAck(`{"op":"pub","ch":"y","data":1,"id":2}`)
	for range 2*publishSample - 1 {
		if err := h.Publish(context.Background(), "x", []byte("2")); err != nil {
			t.Fatal(err)
		}
	}
	if o.subs.Load() != 1 || o.pubs.Load() != 2 { // publishes are sampled
		t.Fatalf("observed %d subscribes, %d publishes; want 1, 2", o.subs.Load(), o.pubs.Load())
	}
}

// timingObserver keeps every sub-ack wait the hub reports.
type timingObserver struct {
	mu   sync.Mutex
	subs []time.Duration
}

func (o *timingObserver) SubscribeAcked(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.subs = append(o.subs, d)
}
func (o *timingObserver) PublishQueued(time.Duration) {}

func (o *timingObserver) acked() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Duration(nil), o.subs...)
}

// TestObserverTimesWaitingSubs: a sub that waits for the cluster is timed
// once, by the waiter that acks it (await.go), from the moment it arrived:
// its wait covers at least the time from being queued to the release.
func TestObserverTimesWaitingSubs(t *testing.T) {
	var o timingObserver
	relay := newFakeRelay()
	cfg := DefaultConfig()
	cfg.Cluster = relay
	cfg.Observer = &o
	_, url := testHub(t, cfg)
	c := dial(t, url)
	c.SendText(`{"op":"sub","ch":"x","id":1}`)
	c.SendText(`{"op":"sub","ch":"x","id":2}`)      // a repeated sub waits too
	c.MustAck(`{"op":"unsub","ch":"other","id":3}`) // answered at once: both subs are queued
	queued := time.Now()
	if n := len(o.acked()); n != 0 {
		t.Fatalf("%d subs timed before the cluster confirmed them", n)
	}
	released := time.Now()
	close(relay.release)
	for range 2 {
		if m := c.ReadJSON(); m["op"] != "ack" {
			t.Fatalf("want ack, got %v", m)
		}
	}
	waitFor(t, 5*time.Second, "both subs timed", func() bool { return len(o.acked()) == 2 })
	for _, d := range o.acked() {
		if d < released.Sub(queued) {
			t.Fatalf("sub timed %v, less than the %v it waited after being queued", d, released.Sub(queued))
		}
	}
	c.MustAck(`{"op":"sub","ch":"y","id":4}`) // confirmed at once, timed on the read worker
	waitFor(t, 5*time.Second, "the third sub timed", func() bool { return len(o.acked()) == 3 })
}
