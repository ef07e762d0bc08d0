package transport

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/transport/wstest"
)

// sendUnread starts a frame far over the limit and sends part of it: the
// server refuses it at the header, so the rest sits unread in its socket.
func (c *client) sendUnread() {
	c.t.Helper()
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Length: 1 << 20, Mask: [4]byte{1, 2, 3, 4}}
	if err := ws.WriteHeader(c.conn, h); err != nil {
		c.t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(make([]byte, 64<<10)); err != nil {
		c.t.Fatal(err)
	}
}

// expectFIN reads what follows the close frame: the end of the stream,
// not a reset.
func (c *client) expectFIN() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.r.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		c.t.Fatalf("after the close frame: %d bytes, %v; want the end of the stream (FIN)", n, err)
	}
}

// lingersUntilClientCloses checks, after the close frame was read, that
// the server ended the stream (FIN), keeps the socket open while the
// client has not closed (CloseLinger is long here), and closes it once the
// client has.
func lingersUntilClientCloses(t *testing.T, e *env, c *client) {
	t.Helper()
	c.expectFIN()
	if n := e.srv.Stats().Conns; n != 1 {
		t.Fatalf("Conns = %d while the client has not closed, want 1 (lingering)", n)
	}
	_ = c.conn.Close()
	wstest.WaitFor(t, 10*time.Second, "the server to close once the client did", func() bool {
		return e.srv.Stats().Conns == 0
	})
}

// A server-side close with client bytes still unread must not end in a
// reset: a client OS may drop what it had not read yet when a reset
// arrives (Windows does), the close frame with it, and the client sees
// 1006 instead of the code. The server shuts its write side instead, and
// closes once the client has (here, long before the linger would end).
func TestCloseWithUnreadInputEndsInFIN(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.CloseLinger = time.Minute
		e := newEnv(t, cfg, true)
		c := e.dial()
		c.sendUnread()
		code, _ := c.readClose()
		if code != ws.StatusCode(CloseTooBig) {
			t.Fatalf("close code %d, want %d", code, CloseTooBig)
		}
		wstest.WaitFor(t, 5*time.Second, "the server to have dealt with the close", func() bool {
			return e.rec(0).closeErr.Load() != nil && e.srv.Stats().CloseCodes["1009"] == 1
		})
		lingersUntilClientCloses(t, e, c)
	})
}

// The same for a close the application asks for while the client's input
// waits unread: the handler is busy with its first message.
func TestAppCloseWithUnreadInputEndsInFIN(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, false)
		e.hold = make(chan struct{})
		release := sync.OnceFunc(func() { close(e.hold) })
		t.Cleanup(release) // before Shutdown waits for OnClose, if the test fails
		c := e.dial()
		c.sendText("one")
		wstest.WaitFor(t, 5*time.Second, "the first message", func() bool { return len(e.rec(0).messages()) == 1 })
		for range 16 {
			c.sendText(strings.Repeat("x", 512))
		}
		e.rec(0).conn.Load().Close(4003, "kicked")
		code, reason := c.readClose()
		if code != 4003 || reason != "kicked" {
			t.Fatalf("close %d %q, want 4003 kicked", code, reason)
		}
		c.expectFIN()
		release()
		e.rec(0).waitClosed(t)
	})
}

// A client that never closes its side does not hold the socket open past
// CloseLinger.
func TestCloseLingerEnds(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.CloseLinger = 50 * time.Millisecond
		e := newEnv(t, cfg, true)
		c := e.dial()
		c.sendUnread()
		e.rec(0).waitClosed(t)
		wstest.WaitFor(t, 10*time.Second, "the linger to end", func() bool { return e.srv.Stats().Conns == 0 })
		if code, _ := c.readClose(); code != ws.StatusCode(CloseTooBig) {
			t.Fatalf("close code %d, want %d", code, CloseTooBig)
		}
	})
}

// Over TLS the end of the stream is a close_notify, and the socket too
// stays open until the client closes.
func TestTLSCloseWithUnreadInputEndsInCloseNotify(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.CloseLinger = time.Minute
		e := newTLSEnv(t, cfg, true)
		c := e.dialTLS()
		c.sendUnread()
		if code, _ := c.readClose(); code != ws.StatusCode(CloseTooBig) {
			t.Fatalf("close code %d, want %d", code, CloseTooBig)
		}
		lingersUntilClientCloses(t, e.env, c)
	})
}

// A connection closed from OnOpen, before epoll ever watched it, lingers
// as well, and ends when the client closes.
func TestCloseFromOnOpenLingers(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.CloseLinger = time.Minute
		e := newEnv(t, cfg, false)
		e.shut = true
		c := e.dial()
		if code, _ := c.readClose(); code != 4000 {
			t.Fatalf("close code %d, want 4000", code)
		}
		e.rec(0).waitClosed(t)
		lingersUntilClientCloses(t, e, c)
	})
}
