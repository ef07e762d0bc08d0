package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// silentServer accepts WebSocket upgrades and then says nothing, as a
// node stuck after the handshake does: no hello ever comes.
type silentServer struct {
	ln  net.Listener
	URL string
	wg  sync.WaitGroup

	mu       sync.Mutex
	conns    []net.Conn
	upgraded int
}

func startSilent(t testing.TB) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln, URL: "ws://" + ln.Addr().String() + "/ws"}
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
			s.mu.Unlock()
			if _, err := ws.Upgrade(nc); err == nil {
				s.mu.Lock()
				s.upgraded++
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, nc := range s.conns {
			nc.Close()
		}
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
