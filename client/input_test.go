package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Bad input is refused by the client before it reaches the wire: data
// that is valid JSON but not UTF-8 would make the server close the whole
// connection (1007), and a channel name that is not UTF-8 would be
// rewritten by the JSON encoder (U+FFFD) into another channel.
func TestBadInputRefusedLocally(t *testing.T) {
	h := startHub(t, "h1")
	var ev events
	cfg := testConfig(h.URL)
	cfg.OnEvent = ev.on
	c := connect(t, cfg)
	s := subscribe(t, c, "ok")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := c.Publish(ctx, "ok", []byte("\"\xff\"")); !errors.Is(err, ErrBadData) {
		t.Errorf("publish of invalid UTF-8 data: %v, want ErrBadData", err)
	}
	if _, err := c.Subscribe(ctx, "bad\xff"); !errors.Is(err, ErrBadChannel) {
		t.Errorf("subscribe to a channel that is not UTF-8: %v, want ErrBadChannel", err)
	}
	if err := c.Publish(ctx, "bad\xff", []byte(`1`)); !errors.Is(err, ErrBadChannel) {
		t.Errorf("publish to a channel that is not UTF-8: %v, want ErrBadChannel", err)
	}
	if _, err := c.History(ctx, "bad\xff", 1); !errors.Is(err, ErrBadChannel) {
		t.Errorf("history of a channel that is not UTF-8: %v, want ErrBadChannel", err)
	}
	start := time.Now()
	if _, err := c.Subscribe(ctx, "room", WithInfo([]byte(`{"name":`))); !errors.Is(err, ErrBadData) {
		t.Errorf("subscribe with info that is not JSON: %v after %v, want ErrBadData at once", err, time.Since(start))
	}
	if _, err := c.Subscribe(ctx, "room2", WithInfo([]byte("\"\xff\""))); !errors.Is(err, ErrBadData) {
		t.Errorf("subscribe with info that is not UTF-8: %v, want ErrBadData", err)
	}

	// None of it cost the connection: the subscription is still served,
	// with no gap.
	h.publish(t, "ok", `"still"`)
	if m := next(t, s); m.Gap || string(m.Data) != `"still"` {
		t.Fatalf("got %+v, want the next message and no gap", m)
	}
	if d := ev.of(EventDisconnected); len(d) != 0 {
		t.Fatalf("bad input disconnected the client: %+v", d)
	}
}

// A Subscribe that runs out of time while the server refuses it with 503
// (retried) says so: the context's error and the server's, both
// reachable with errors.Is / errors.As.
func TestSubscribeTimeoutSaysWhy(t *testing.T) {
	f := startFake(t, newStore(10))
	c := connect(t, testConfig(f.URL))
	f.set(func(f *fake) {
		f.failSub["busy"] = slices.Repeat([]int{503}, 100)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Subscribe(ctx, "busy")
	var se *Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("got %v, want the deadline and the server's 503", err)
	}
}

// The server's close code decides what the client does (4003: stop), so
// it must not be lost when the client's answer to the close frame cannot
// be written (the server reset the connection, or a publish holds the
// socket): the echo's write error used to replace it, and a client
// disconnected by the server (4003) reconnected.
func TestCloseCodeSurvivesFailedEcho(t *testing.T) {
	f := startFake(t, newStore(10))
	c := connect(t, testConfig(f.URL))
	f.closeAllReset(4003, "disconnected")
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("4003 did not stop the client (state %v)", c.State())
	}
	var ce *CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != 4003 {
		t.Fatalf("err %v, want the server's 4003", c.Err())
	}
}

// TestOversizedRequestFailsAlone: the hub's hello says its max_message, so
// a request over it fails with 413 and is never sent: the hub would close
// the connection (1009), and every subscription would get a gap.
func TestOversizedRequestFailsAlone(t *testing.T) {
	h := startHub(t, "h1")
	var ev events
	cfg := testConfig(h.URL)
	cfg.OnEvent = ev.on
	c := connect(t, cfg)
	s := subscribe(t, c, "big")
	huge := `"` + strings.Repeat("a", 100<<10) + `"`
	var se *Error
	if err := c.Publish(context.Background(), "big", []byte(huge)); !errors.As(err, &se) || se.Code != 413 || !strings.Contains(se.Reason, "at most 65536") {
		t.Fatalf("publish of 100 KiB: %v, want *Error 413 naming the limit", err)
	}
	if _, err := c.Subscribe(context.Background(), "room", WithInfo([]byte(huge))); !errors.As(err, &se) || se.Code != 413 {
		t.Fatalf("subscribe with 100 KiB of info: %v, want *Error 413", err)
	}
	h.publish(t, "big", `"small"`)
	if m := next(t, s); string(m.Data) != `"small"` || m.Gap {
		t.Fatalf("after the refusals: %+v", m)
	}
	if d := ev.of(EventDisconnected); len(d) > 0 {
		t.Fatalf("disconnected: %+v", d)
	}
}

// TestLostRequestSaysHowTheConnectionEnded: a node that does not say its
// max_message closes with 1009 on a request over it; the request in
// flight fails with ErrConnectionLost naming that close, not only "lost".
func TestLostRequestSaysHowTheConnectionEnded(t *testing.T) {
	f := startFake(t, newStore(10))
	f.set(func(f *fake) { f.swallow = func(op string) bool { return op == "pub" } })
	c := connect(t, testConfig(f.URL))
	errc := make(chan error, 1)
	go func() { errc <- c.Publish(context.Background(), "x", []byte(`1`)) }()
	waitFor(t, 5*time.Second, "the publish on the wire", func() bool { return f.count("pub", "x") == 1 })
	f.closeAll(1009, "message too big")
	err := <-errc
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "1009 message too big") {
		t.Fatalf("publish: %v, want ErrConnectionLost naming the 1009", err)
	}
}
