package client

import (
	"context"
	"github.com/meshcast/meshcast/internal/wait"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig has short timings, so that tests of reconnects are fast.
func testConfig(urls ...string) Config {
	cfg := DefaultConfig()
	cfg.URLs = urls
	cfg.MinReconnectDelay = 10 * time.Millisecond
	cfg.MaxReconnectDelay = 100 * time.Millisecond
	cfg.RequestTimeout = 5 * time.Second
	return cfg
}

func connect(t testing.TB, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func subscribe(t testing.TB, c *Client, ch string, opts ...SubscribeOption) *Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Subscribe(ctx, ch, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond until it holds or the timeout fails the test.
var waitFor = wait.For

// next reads one message of s within 10 s.
func next(t testing.TB, s *Subscription) Message {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			t.Fatalf("subscription %s ended: %v", s.Channel(), s.Err())
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message on %s in 10 s", s.Channel())
	}
	return Message{}
}

// events records what OnEvent is told.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) on(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) of(typ EventType) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.all {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// wait returns the events of typ once there are at least n: OnEvent runs
// on its own goroutine, after what the test saw on a subscription.
func (e *events) wait(t testing.TB, typ EventType, n int) []Event {
	t.Helper()
	waitFor(t, 5*time.Second, "events", func() bool { return len(e.of(typ)) >= n })
	return e.of(typ)
}

// proxy is a TCP relay in front of a server, to drop connections the way
// a dead node or network does (no close frame), and to refuse them.
type proxy struct {
	ln     net.Listener
	target string
	URL    string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	down  bool
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, URL: "ws://" + ln.Addr().String() + "/ws", conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		out, err := net.Dial("tcp", p.target)
		if down || err != nil {
			in.Close()
			if out != nil {
				out.Close()
			}
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut drops every relayed connection at once.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// setDown makes the proxy refuse (accept and close) new connections.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}
