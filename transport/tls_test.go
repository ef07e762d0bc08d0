package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/transport/wstest"
)

// A hijacked *tls.Conn has no file descriptor, so every connection here runs
// on the fallback path in both modes: a reader goroutine and blocking writes.

// tlsEnv is newEnv behind an HTTPS listener.
type tlsEnv struct {
	*env
	roots *x509.CertPool
}

func newTLSEnv(t testing.TB, cfg Config, echo bool) *tlsEnv {
	t.Helper()
	cert, roots := wstest.SelfSigned(t, "transport test")
	e := startEnv(t, cfg, echo, func(hs *httptest.Server) {
		hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		hs.StartTLS()
	})
	return &tlsEnv{env: e, roots: roots}
}

func (e *tlsEnv) dialTLS() *client {
	e.t.Helper()
	c := e.dialWith(ws.Dialer{TLSConfig: &tls.Config{RootCAs: e.roots}})
	if _, ok := c.conn.(*tls.Conn); !ok {
		e.t.Fatalf("dialled a %T, want *tls.Conn", c.conn)
	}
	return c
}

func TestTLSEcho(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newTLSEnv(t, cfg, true)
		c := e.dialTLS()
		for _, s := range []string{"hello", "", strings.Repeat("x", 1000), "héllo ✓"} {
			c.sendText(s)
			if got := c.readText(); got != s {
				t.Fatalf("echo %q, want %q", got, s)
			}
		}
		// The server side really is on the fallback path.
		if conn := e.rec(0).conn.Load(); conn.polled || conn.rc != nil {
			t.Fatalf("TLS conn polled=%v rc=%v, want the goroutine reader", conn.polled, conn.rc)
		}
		c.write(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
		c.expectClose(CloseNormal)
		if got := e.rec(0).waitClosed(t); got.Code != CloseNormal || !got.Remote {
			t.Fatalf("OnClose(%+v)", *got)
		}
		wstest.WaitFor(t, 5*time.Second, "registry empty", func() bool { return e.srv.Stats().Conns == 0 })
	})
}

func TestTLSFragmentedMessage(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.MaxMessageSize = 64 << 10
		e := newTLSEnv(t, cfg, true)
		c := e.dialTLS()
		c.write(ws.NewFrame(ws.OpText, false, []byte("hel")))
		c.write(ws.NewPingFrame([]byte("mid")))
		c.write(ws.NewFrame(ws.OpContinuation, false, []byte("lo, w\xc3")))
		c.write(ws.NewFrame(ws.OpContinuation, true, []byte("\xb6rld")))
		if f := c.read(); f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
			t.Fatalf("got %v %q, want pong \"mid\"", f.Header.OpCode, f.Payload)
		}
		if got, want := c.readText(), "hello, wörld"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		// A message larger than one TLS record (16 KiB) and than the
		// reader's 4 KiB buffer, in one frame.
		big := strings.Repeat("y", 40<<10)
		c.sendText(big)
		if got := c.readText(); got != big {
			t.Fatalf("large echo: %d bytes, want %d", len(got), len(big))
		}
		if got := e.rec(0).messages(); len(got) != 2 {
			t.Fatalf("handler got %d messages, want 2", len(got))
		}
	})
}

func TestTLSSlowConsumer(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteQueueSize = 256 << 10
		cfg.WriteTimeout = slowConsumerWriteTimeout
		e := newTLSEnv(t, cfg, false)
		slow, fast := e.dialTLS(), e.dialTLS()
		// Large frames fill the socket in few sends.
		slowConsumerRun(t, e.env, slow, fast, 1000, 50)
		wstest.WaitFor(t, 10*time.Second, "slow conn torn down", func() bool { return e.srv.Stats().Conns == 0 })
	})
}

// Not parallel: see TestShutdown.
func TestTLSShutdown(t *testing.T) {
	forModes(t, func(t *testing.T, cfg Config) {
		e := newTLSEnv(t, cfg, false)
		shutdownRun(t, e.env, e.dialTLS)
	})
}

func TestTLSShutdownDeadline(t *testing.T) {
	// Not parallel: it bounds Shutdown by wall clock.
	//
	// A TLS client that never reads: Shutdown must still end at its deadline
	// and not wait for a close_notify that cannot be written.
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteQueueSize = 128 << 20
		e := newTLSEnv(t, cfg, false)
		e.dialTLS()
		conn := e.rec(0).conn.Load()
		f, _ := NewTextFrame(60 << 10)
		// More than the loopback buffers can hold; the frames share one
		// buffer, so this costs no memory.
		for queued := 0; queued < 80<<20; queued += len(f) {
			if err := conn.Send(f); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Shutdown took %v past a 100ms deadline", d)
		}
		if got := e.rec(0).closeErr.Load(); got == nil {
			t.Fatal("OnClose not called before Shutdown returned")
		}
	})
}

func TestTLSStuckClientTeardown(t *testing.T) {
	// Not parallel: it bounds the teardown by wall clock.
	//
	// A client that never reads: the blocked write times out and the
	// connection is torn down. That must not add a close_notify write that
	// blocks for crypto/tls's own 5 s on the same full socket.
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteTimeout = 300 * time.Millisecond
		cfg.WriteQueueSize = 128 << 20
		e := newTLSEnv(t, cfg, false)
		e.dialTLS()
		conn := e.rec(0).conn.Load()
		f, _ := NewTextFrame(60 << 10)
		for queued := 0; queued < 80<<20; queued += len(f) { // more than the socket buffers can hold
			if err := conn.Send(f); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		conn.Close(CloseNormal, "")
		e.rec(0).waitClosed(t)
		// Shutdown waits for the socket to be closed (the registry entry
		// goes before the close).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("teardown took %v with a %v write timeout", d, cfg.WriteTimeout)
		}
	})
}
