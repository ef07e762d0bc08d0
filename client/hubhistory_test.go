package client

import (
	"strconv"
	"testing"

	"github.com/meshcast/meshcast/hub"
)

// historyHub is a real hub whose "hist" namespace keeps history.
func historyHub(t testing.TB, window int) *hubServer {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.NodeName = "hist"
	cfg.Security.Namespaces = map[string]hub.Namespace{"hist": {History: window}}
	return serveHub(t, cfg)
}

// Against a real hub with history: what was published while the client
// was away is recovered after the reconnect, in order, once, with no gap.
func TestRecoverFromHub(t *testing.T) {
	h := historyHub(t, 100)
	p := startProxy(t, h.srv.Listener.Addr().String())
	c := connect(t, testConfig(p.URL))
	s := subscribe(t, c, "hist:a")
	h.publish(t, "hist:a", `0`)
	if m := next(t, s); string(m.Data) != "0" || m.Pos == "" {
		t.Fatalf("got %+v, want 0 with a position", m)
	}
	p.setDown(true)
	p.cut()
	waitFor(t, 5e9, "the client to notice", func() bool { return c.State() == Connecting })
	for i := 1; i <= 20; i++ {
		h.publish(t, "hist:a", strconv.Itoa(i))
	}
	p.setDown(false)
	for i := 1; i <= 25; i++ {
		if i == 21 {
			waitFor(t, 5e9, "the reconnect", func() bool { return c.State() == Connected })
			for j := 21; j <= 25; j++ {
				h.publish(t, "hist:a", strconv.Itoa(j))
			}
		}
		if m := next(t, s); m.Gap || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d: got %+v", i, m)
		}
	}
}

// A subscription that got no message before the connection dropped
// resumes from the position its ack carried: what was published while the
// client was away is recovered, with no gap.
func TestRecoverWithoutAnyMessageFromHub(t *testing.T) {
	h := historyHub(t, 100)
	p := startProxy(t, h.srv.Listener.Addr().String())
	c := connect(t, testConfig(p.URL))
	s := subscribe(t, c, "hist:quiet")
	if s.Pos() == "" {
		t.Fatal("no position after the ack on a channel with history")
	}
	p.setDown(true)
	p.cut()
	waitFor(t, 5e9, "the client to notice", func() bool { return c.State() == Connecting })
	for i := 1; i <= 5; i++ {
		h.publish(t, "hist:quiet", strconv.Itoa(i))
	}
	p.setDown(false)
	for i := 1; i <= 5; i++ {
		if m := next(t, s); m.Gap || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d: got %+v", i, m)
		}
	}
}
