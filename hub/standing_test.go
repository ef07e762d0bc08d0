package hub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/transport/wstest"
)

// TestNotInStandingRefuses: while the cluster says this node is not a
// member in good standing, upgrades get HTTP 503 with Retry-After, and sub
// and pub from connected clients get err 503 and change nothing; unsub
// still works. When standing returns, everything works again.
func TestNotInStandingRefuses(t *testing.T) {
	relay := newFakeRelay()
	close(relay.release)
	cfg := DefaultConfig()
	cfg.Cluster = relay
	h, url := testHub(t, cfg)
	sub := dial(t, url)
	sub.MustAck(`{"op":"sub","ch":"a","id":1}`)

	relay.setStanding(errors.New("isolated: 1 of 3 members reachable"))
	c, err := wstest.TryDial(url, nil)
	if err == nil {
		c.Conn.Close()
		t.Fatal("upgrade accepted while not in standing")
	}
	resp, err := http.Get(strings.Replace(url, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade refusal: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, req := range []string{
		`{"op":"sub","ch":"b","id":2}`,
		`{"op":"pub","ch":"a","data":1,"id":3}`,
	} {
		m := sub.RoundTrip(req)
		if m["op"] != "err" || m["code"] != 503.0 || !strings.Contains(m["reason"].(string), "cluster unavailable: isolated") {
			t.Fatalf("%s: got %v, want err 503", req, m)
		}
	}
	if pub, _ := relay.snapshot(); len(pub) != 0 {
		t.Fatalf("a refused pub reached the cluster: %v", pub)
	}
	if err := h.Publish(context.Background(), "a", []byte(`1`)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Hub.Publish: %v, want ErrUnavailable", err)
	}
	sub.MustAck(`{"op":"unsub","ch":"b","id":4}`)

	relay.setStanding(nil)
	if m := sub.RoundTrip(`{"op":"pub","ch":"a","data":"back","id":5}`); m["op"] != "msg" || m["data"] != "back" {
		t.Fatalf("after standing returned: %v", m)
	}
	if m := sub.ReadJSON(); m["op"] != "ack" {
		t.Fatalf("after standing returned: %v, want the pub's ack", m)
	}
	if h.Stats().Unavailable < 3 {
		t.Fatalf("unavailable counted %d times, want at least 3", h.Stats().Unavailable)
	}
}

// TestGapReachesSubscribersOfThatChannel: a gap from the cluster is one
// frame per subscriber of each named channel, and nothing to others.
func TestGapReachesSubscribersOfThatChannel(t *testing.T) {
	relay := newFakeRelay()
	close(relay.release)
	cfg := DefaultConfig()
	cfg.Cluster = relay
	h, url := testHub(t, cfg)
	a, b := dial(t, url), dial(t, url)
	a.MustAck(`{"op":"sub","ch":"x","id":1}`)
	b.MustAck(`{"op":"sub","ch":"y","id":1}`)

	relay.recv.Gap([]string{"x", "nobody-here", "$sys:disconnect"})
	if m := a.ReadJSON(); m["op"] != "gap" || m["ch"] != "x" {
		t.Fatalf("subscriber of x got %v, want a gap on x", m)
	}
	b.MustAck(`{"op":"unsub","ch":"z","id":2}`) // the next frame b gets is this ack: no gap for y
	if got := h.Stats().Gaps; got != 1 {
		t.Fatalf("gaps counted %d, want 1", got)
	}
}

// TestLateConfirmationAcksThenGap: a sub the cluster does not confirm in
// time is acked, then told with a gap that publishes may be missing.
func TestLateConfirmationAcksThenGap(t *testing.T) {
	relay := newFakeRelay()
	close(relay.timeout)
	cfg := DefaultConfig()
	cfg.Cluster = relay
	h, url := testHub(t, cfg)
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"slow","id":1}`)
	if m := c.ReadJSON(); m["op"] != "gap" || m["ch"] != "slow" {
		t.Fatalf("after a late ack: %v, want a gap on slow", m)
	}
	if h.Stats().InterestTimeouts != 1 {
		t.Fatalf("interest timeouts %d", h.Stats().InterestTimeouts)
	}
}

// TestClusterNamesTheNode: with a cluster, hello carries the cluster's
// node name, and a different hub NodeName is refused.
func TestClusterNamesTheNode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster = newFakeRelay()
	_, url := testHub(t, cfg)
	if c := dial(t, url); c.Hello["node"] != "fake" {
		t.Fatalf("hello %v, want node fake", c.Hello)
	}
	cfg = DefaultConfig()
	cfg.NodeName = "other"
	cfg.Cluster = newFakeRelay()
	if h, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		if h != nil {
			h.Shutdown(context.Background())
		}
		t.Fatalf("a NodeName different from the cluster's: %v, want ErrInvalidConfig", err)
	}
}

// TestNoGapBeforeTheAck: a gap emitted while a sub still waits for the
// cluster is not sent to it (nothing was promised yet); after the ack it is.
func TestNoGapBeforeTheAck(t *testing.T) {
	relay := newFakeRelay()
	cfg := DefaultConfig()
	cfg.Cluster = relay
	_, url := testHub(t, cfg)
	c := dial(t, url)
	c.SendText(`{"op":"sub","ch":"x","id":1}`)
	waitFor(t, 5*time.Second, "the sub waits", func() bool {
		_, in := relay.snapshot()
		return len(in) == 1
	})
	relay.recv.Gap([]string{"x"})
	close(relay.release)
	if m := c.ReadJSON(); m["op"] != "ack" {
		t.Fatalf("first frame %v, want the ack (no gap before it)", m)
	}
	relay.recv.Gap([]string{"x"})
	if m := c.ReadJSON(); m["op"] != "gap" {
		t.Fatalf("after the ack: %v, want a gap", m)
	}
}

// TestNilClusterPointerIsOneNode: a service that creates its cluster only
// when it has peers passes a nil *cluster.Cluster when it has none; that is
// a single node, as a nil Config.Cluster is, not a panic in New.
func TestNilClusterPointerIsOneNode(t *testing.T) {
	var cl *fakeRelay // as var cl *cluster.Cluster, never assigned
	cfg := DefaultConfig()
	cfg.Cluster = cl
	h, url := testHub(t, cfg)
	if c := dial(t, url); c.Hello["node"] != "meshcast" {
		t.Fatalf("hello %v, want the single node's name", c.Hello)
	}
	if err := h.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.MaxDataSize = -1 // New fails: it must not release the nil cluster either
	if h, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		if h != nil {
			h.Shutdown(context.Background())
		}
		t.Fatalf("%v, want ErrInvalidConfig", err)
	}
}
