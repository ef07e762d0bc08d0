package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// silentServer accepts WebSocket upgrades and then says nothing, as a
// node stuck after the handshake does: no hello ever comes.
type silentServer struct {
	ln    net.Listener
	URL   string
	wg    sync.WaitGroup
	hello bool          // send the hello, read one byte, then nothing
	read  chan struct{} // closed when that byte came

	mu       sync.Mutex
	closed   bool
	conns    []net.Conn
	upgraded int
}

func startSilent(t testing.TB) *silentServer { return startSilentServer(t, false) }

// startDeaf starts a server that says hello and then reads nothing, as a
// stuck node whose kernel buffers fill up.
func startDeaf(t testing.TB) *silentServer { return startSilentServer(t, true) }

func startSilentServer(t testing.TB, hello bool) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln, URL: "ws://" + ln.Addr().String() + "/ws", hello: hello, read: make(chan struct{})}
	var readOnce sync.Once
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			if s.closed {
				nc.Close()
			}
			s.mu.Unlock()
			if _, err := ws.Upgrade(nc); err == nil {
				if s.hello {
					// A small receive buffer: the client's writes fill it soon.
					_ = nc.(*net.TCPConn).SetReadBuffer(4 << 10)
					_ = wsutil.WriteServerText(nc, []byte(`{"op":"hello","client":"c1","node":"deaf"}`))
					s.wg.Add(1)
					go func() {
						defer s.wg.Done()
						if _, err := nc.Read(make([]byte, 1)); err == nil {
							readOnce.Do(func() { close(s.read) })
						}
					}()
				}
				s.mu.Lock()
				s.upgraded++
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		s.closed = true
		for _, nc := range s.conns {
			nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *silentServer) upgrades() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upgraded
}

// Connect's context and Close end a connection attempt that waits for the
// hello, not only one that waits for the TCP connection or the upgrade:
// DialTimeout (10 s by default) is not what a caller asked for.
func TestCancelWhileWaitingForHello(t *testing.T) {
	silent := startSilent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Connect(ctx, testConfig(silent.URL))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect to a silent node: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Connect returned %v after its context ended at 200 ms", d)
	}

	// Close while reconnecting to a node that does not say hello.
	h := startHub(t, "h1")
	p := startProxy(t, h.srv.Listener.Addr().String())
	c, err := Connect(context.Background(), testConfig(p.URL, silent.URL))
	if err != nil {
		t.Fatal(err)
	}
	before := silent.upgrades()
	p.setDown(true)
	p.cut()
	waitFor(t, 5*time.Second, "a reconnect to the silent node", func() bool { return silent.upgrades() > before })
	start = time.Now()
	c.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v while the client waited for a hello", d)
	}
}

// A write that fails after it started (against a node that reads
// nothing: WriteTimeout, or since TestPublishContextEndsStuckWrite the
// caller's context) may have left half a frame on the connection: the
// connection is closed and replaced, whatever the caller's context says.
// It was kept when the caller's context had ended meanwhile, and every
// later frame followed the half one.
func TestFailedWriteClosesConnection(t *testing.T) {
	deaf := startDeaf(t)
	var ev events
	cfg := testConfig(deaf.URL)
	cfg.WriteTimeout = 300 * time.Millisecond
	cfg.OnEvent = ev.on
	c := connect(t, cfg)
	big := bigJSONString()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-deaf.read: // the frame is on its way: its caller gives up
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := c.Publish(ctx, "x", big); err == nil {
		t.Fatal("a publish to a node that reads nothing succeeded")
	}
	d := ev.wait(t, EventDisconnected, 1)
	if !d[0].Reconnect {
		t.Fatalf("disconnected %+v", d[0])
	}
}

// Publish returns when its context ends, also while its frame is stuck on
// the way to a node that reads nothing: it used to wait for WriteTimeout.
// The connection, holding half a frame, is replaced.
func TestPublishContextEndsStuckWrite(t *testing.T) {
	deaf := startDeaf(t)
	var ev events
	cfg := testConfig(deaf.URL)
	cfg.WriteTimeout = 5 * time.Second
	cfg.OnEvent = ev.on
	c := connect(t, cfg)
	big := bigJSONString()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelled := make(chan time.Time, 1)
	go func() {
		select {
		case <-deaf.read:
			cancelled <- time.Now()
			cancel()
		case <-ctx.Done():
		}
	}()
	err := c.Publish(ctx, "x", big)
	took := time.Since(<-cancelled)
	if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("publish: %v, want its context's error (or the connection's loss)", err)
	}
	if took > 2*time.Second {
		t.Fatalf("publish returned %v after its context ended (WriteTimeout 5 s)", took)
	}
	if d := ev.wait(t, EventDisconnected, 1); !d[0].Reconnect {
		t.Fatalf("disconnected %+v", d[0])
	}
}

// bigJSONString is a JSON string of 8 MiB: more than the kernel buffers
// of a loopback connection hold (wmem max 4 MiB), so its write gets stuck
// at a node that reads nothing.
func bigJSONString() []byte {
	big := bytes.Repeat([]byte("a"), 8<<20)
	big[0], big[len(big)-1] = '"', '"'
	return big
}
