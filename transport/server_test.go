package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/transport/wstest"
)

// halfFrame is the first part of a masked text frame announcing 100 bytes.
func halfFrame() []byte {
	b, err := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte(strings.Repeat("h", 100)))))
	if err != nil {
		panic(err)
	}
	return b
}

func TestHalfFrameDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		full := halfFrame()
		// Three times the worker pool of clients that stop mid-frame.
		var stalled []*client
		for range 3 * cfg.Workers {
			c := e.dial()
			if _, err := c.conn.Write(full[:20]); err != nil {
				t.Fatal(err)
			}
			stalled = append(stalled, c)
		}
		normal := e.dial()
		for i := range 10 {
			msg := fmt.Sprint("m", i)
			normal.sendText(msg)
			if got := normal.readText(); got != msg {
				t.Fatalf("got %q, want %q", got, msg)
			}
		}
		// The stalled clients' frames still complete from their leftovers.
		for _, c := range stalled {
			if _, err := c.conn.Write(full[20:]); err != nil {
				t.Fatal(err)
			}
			if got := c.readText(); got != strings.Repeat("h", 100) {
				t.Fatalf("completed frame echoed as %q", got)
			}
		}
	})
}

func TestEarlyBytesAfterHandshake(t *testing.T) {
	t.Parallel()
	// The frame travels in the same write as the upgrade request, so it sits
	// in the hijacked bufio.Reader and must be fed to the parser from there.
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		nc, err := net.Dial("tcp", e.hs.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		frame, _ := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("early"))))
		req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		if _, err := nc.Write(append([]byte(req), frame...)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		c := &client{t: t, conn: nc, r: br}
		if got := c.readText(); got != "early" {
			t.Fatalf("got %q, want \"early\"", got)
		}
	})
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteTimeout = slowConsumerWriteTimeout
		e := newEnv(t, cfg, false)
		slow, fast := e.dial(), e.dial()
		slowConsumerRun(t, e, slow, fast, 8, 2000)
	})
}

// Not parallel: with 50 ms pings the answering client has about 100 ms to
// be scheduled, which other tests loading the CPU could take from it.
func TestPingTimeout(t *testing.T) {
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.PingInterval = 50 * time.Millisecond
		e := newEnv(t, cfg, false)
		silent := e.dial()
		alive := e.dial()
		// The live client answers pings, so it must outlive the silent one.
		aliveDone := make(chan error, 1)
		go func() {
			for {
				_ = alive.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				f, err := ws.ReadFrame(alive.r)
				if err != nil {
					aliveDone <- err
					return
				}
				if f.Header.OpCode == ws.OpClose {
					aliveDone <- nil
					return
				}
				// A write error shows up as a read error or close next.
				_ = ws.WriteFrame(alive.conn, ws.MaskFrame(ws.NewPongFrame(f.Payload)))
			}
		}()
		pings := 0
		for {
			f := silent.read()
			if f.Header.OpCode == ws.OpPing {
				pings++
				continue
			}
			code, reason := ws.ParseCloseFrameData(f.Payload)
			if f.Header.OpCode != ws.OpClose || code != ws.StatusGoingAway || reason != ReasonPingTimeout {
				t.Fatalf("got %v %d %q, want close 1001 %q", f.Header.OpCode, code, reason, ReasonPingTimeout)
			}
			break
		}
		if pings == 0 {
			t.Fatal("no ping before the timeout")
		}
		if got := e.rec(0).waitClosed(t); got.Code != CloseGoingAway || got.Reason != ReasonPingTimeout {
			t.Fatalf("OnClose(%+v)", *got)
		}
		// Five more intervals: the answering client stays open.
		deadline := time.Now().Add(5 * cfg.PingInterval)
		wstest.WaitFor(t, 10*time.Second, "five ping intervals", func() bool { return time.Now().After(deadline) })
		if e.rec(1).closeErr.Load() != nil {
			t.Fatalf("answering client closed: %+v", *e.rec(1).closeErr.Load())
		}
		if n := e.srv.Stats().PingTimeouts; n != 1 {
			t.Fatalf("PingTimeouts = %d, want 1", n)
		}
		e.rec(1).conn.Load().Close(CloseNormal, "")
		if err := <-aliveDone; err != nil {
			t.Fatalf("answering client: %v", err)
		}
	})
}

// Not parallel (nor TestTLSShutdown): shutdownRun bounds Shutdown by wall
// clock, which other tests loading the CPU would stretch.
func TestShutdown(t *testing.T) {
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, false)
		shutdownRun(t, e, e.dial)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, _, err := ws.Dialer{}.Dial(ctx, e.url)
		var se ws.StatusError
		if !errors.As(err, &se) || int(se) != http.StatusServiceUnavailable {
			t.Fatalf("dial after Shutdown: %v, want 503", err)
		}
		if err := e.srv.Shutdown(ctx); err != nil { // idempotent
			t.Fatalf("second Shutdown: %v", err)
		}
	})
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	// A client that never reads cannot take the close frame; Shutdown gives
	// up at the deadline, closes the socket and still waits for OnClose.
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteQueueSize = 64 << 20
		e := newEnv(t, cfg, false)
		e.dial()
		conn := e.rec(0).conn.Load()
		f, _ := NewTextFrame(60 << 10)
		// Send until the socket is full and the connection's own writer blocks.
		wstest.WaitFor(t, 10*time.Second, "a blocked write", func() bool {
			if err := conn.Send(f); err != nil {
				t.Fatal(err)
			}
			return e.srv.Stats().BlockedWrites > 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want deadline exceeded", err)
		}
		if got := e.rec(0).closeErr.Load(); got == nil {
			t.Fatal("OnClose not called before Shutdown returned")
		}
	})
}

func TestUpgradeRejectsPlainHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(false), false)
	resp, err := http.Get(e.hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	// The 400 is written before Upgrade counts the error.
	wstest.WaitFor(t, 5*time.Second, "the upgrade error to be counted", func() bool {
		return e.srv.Stats().UpgradeErrors != 0
	})
	if n := e.srv.Stats().UpgradeErrors; n != 1 {
		t.Fatalf("UpgradeErrors = %d", n)
	}
}
