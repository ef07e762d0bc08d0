package hub

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestPublishRateLimit: a burst of 5 at 1/s: the 6th publish in a row is
// refused with 429, the connection stays, and a token comes back later.
func TestPublishRateLimit(t *testing.T) {
	_, url := secureHub(t, nil, SecurityConfig{PublishRate: 1, PublishBurst: 5})
	c := dial(t, url)
	for i := range 5 {
		c.MustAck(fmt.Sprintf(`{"op":"pub","ch":"x","data":%d,"id":%d}`, i, i))
	}
	if r := mustErr(t, c, `{"op":"pub","ch":"x","data":5,"id":5}`, 429); r != "publish rate limit exceeded" {
		t.Fatalf("reason %q", r)
	}
	c.MustAck(`{"op":"sub","ch":"x","id":6}`) // still connected; subscribes are not rate limited
	// Refilled at 1/s: poll until a publish passes again.
	waitFor(t, 5*time.Second, "a refilled token", func() bool {
		m := c.RoundTrip(`{"op":"pub","ch":"y","data":0,"id":7}`)
		return m["op"] == "ack"
	})
}

func TestPublishRateOffByDefault(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	for i := range 500 {
		c.SendText(fmt.Sprintf(`{"op":"pub","ch":"x","data":%d}`, i))
	}
	c.MustAck(`{"op":"pub","ch":"x","data":"last","id":1}`) // no err came before it
}

func TestBucket(t *testing.T) {
	var b bucket
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !b.allow(10, 3, now) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if b.allow(10, 3, now) {
		t.Fatal("4th token in the same instant allowed")
	}
	if !b.allow(10, 3, now.Add(100*time.Millisecond)) {
		t.Fatal("token not refilled after 1/rate")
	}
	if !b.allow(10, 3, now.Add(time.Hour)) || !b.allow(10, 3, now.Add(time.Hour)) || !b.allow(10, 3, now.Add(time.Hour)) || b.allow(10, 3, now.Add(time.Hour)) {
		t.Fatal("refill not capped at the burst")
	}
}

// TestPerIPLimit: the third connection from 127.0.0.1 gets 503 before the
// upgrade; closing one gives its slot back.
func TestPerIPLimit(t *testing.T) {
	h, url := secureHub(t, nil, SecurityConfig{MaxConnectionsPerIP: 2})
	a := dial(t, url)
	dial(t, url)
	mustRefuse(t, url, http.StatusServiceUnavailable, "too many connections from this address")
	a.Conn.Close()
	waitFor(t, 5*time.Second, "slot released", func() bool { n, _ := h.sec.conns.count(); return n == 1 })
	dial(t, url)
	mustRefuse(t, url, http.StatusServiceUnavailable, "from this address")
}

func TestMaxConnections(t *testing.T) {
	h, url := secureHub(t, nil, SecurityConfig{MaxConnections: 1})
	dial(t, url)
	mustRefuse(t, url, http.StatusServiceUnavailable, "too many connections on this node")
	// A refused upgrade (bad token, origin...) gives back its slot at once.
	if n, ips := h.sec.conns.count(); n != 1 || ips != 1 {
		t.Fatalf("count %d over %d addresses", n, ips)
	}
}

// TestRefusedTokenReleasesSlot: slots are taken before the token check and
// must come back when it fails.
func TestRefusedTokenReleasesSlot(t *testing.T) {
	h, url := secureHub(t, hmacVerifier(t), SecurityConfig{MaxConnectionsPerIP: 1})
	for range 3 {
		mustRefuse(t, url, http.StatusUnauthorized, "missing token")
	}
	if n, _ := h.sec.conns.count(); n != 0 {
		t.Fatalf("%d slots held after refusals", n)
	}
	dial(t, withToken(url, hs256(t, claims("a", time.Hour))))
}
