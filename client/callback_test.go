package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// OnEvent may call back into the client (the package doc says so): a
// publish on EventConnected, a publish or a history read on a gap. It
// used to run on the goroutine that reads the connection, which then
// could not read the answer: each such call hung for RequestTimeout.
func TestOnEventMayCallClient(t *testing.T) {
	h := startHub(t, "h1")
	p := startProxy(t, h.srv.Listener.Addr().String())
	var self atomic.Pointer[Client]
	type result struct {
		what string
		err  error
		took time.Duration
	}
	results := make(chan result, 16)
	cfg := testConfig(p.URL)
	cfg.RequestTimeout = 3 * time.Second
	cfg.OnEvent = func(e Event) {
		c := self.Load()
		if c == nil {
			return // Connect has not returned yet
		}
		start := time.Now()
		switch {
		case e.Type == EventConnected:
			err := c.Publish(context.Background(), "log", []byte(`"connected"`))
			results <- result{"publish on connected", err, time.Since(start)}
		case e.Type == EventGap && e.Channel == "ev":
			err := c.Publish(context.Background(), "ev", []byte(`"resync"`))
			results <- result{"publish on gap", err, time.Since(start)}
		}
	}
	c := connect(t, cfg)
	self.Store(c)
	log := subscribe(t, c, "log")
	s := subscribe(t, c, "ev")
	p.cut()
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil || r.took > time.Second {
				t.Fatalf("%s from OnEvent: %v after %v", r.what, r.err, r.took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("OnEvent was not called")
		}
	}
	if m := next(t, s); !m.Gap {
		t.Fatalf("got %+v, want the reconnect gap", m)
	}
	if m := next(t, s); string(m.Data) != `"resync"` {
		t.Fatalf("got %+v, want what OnEvent published", m)
	}
	for {
		if m := next(t, log); !m.Gap {
			if string(m.Data) != `"connected"` {
				t.Fatalf("got %+v", m)
			}
			break
		}
	}
}
