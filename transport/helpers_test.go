package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/transport/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// modes is the table every behaviour test runs over: both readers, and
// the shared writers with io_uring (where the kernel has it) and with
// write(2).
var modes = []struct {
	name       string
	goroutines bool
	noRing     bool
}{
	{name: "epoll", goroutines: false},
	{name: "epoll-write", goroutines: false, noRing: true},
	{name: "goroutines", goroutines: true},
}

// forModes runs f once per mode, in parallel subtests (each gets its own
// Server and listener).
func forModes(t *testing.T, f func(t *testing.T, cfg Config)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(m.goroutines)
			cfg.NoIOURing = m.noRing
			f(t, cfg)
		})
	}
}

// testConfig has small limits and long pings (tests that need pings set them).
func testConfig(goroutines bool) Config {
	return Config{
		MaxMessageSize:   1024,
		WriteQueueSize:   64 << 10,
		PingInterval:     time.Hour,
		WriteTimeout:     5 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		CloseLinger:      500 * time.Millisecond,
		Workers:          2,
		Writers:          2,
		UseGoroutines:    goroutines,
	}
}

// recorder is a Handler that records events and checks the call contract.
type recorder struct {
	echo bool          // echo every message back
	hold chan struct{} // when set, OnMessage returns once it is closed
	shut bool          // close with 4000 from OnOpen

	inCall   atomic.Int32
	problems atomic.Int32 // overlapping calls, calls after OnClose, double OnClose
	conn     atomic.Pointer[Conn]
	closed   chan struct{}
	closeErr atomic.Pointer[CloseError]

	mu   sync.Mutex
	msgs []string
}

func newRecorder(echo bool) *recorder { return &recorder{echo: echo, closed: make(chan struct{})} }

func (r *recorder) enter() {
	if r.inCall.Add(1) != 1 || r.closeErr.Load() != nil {
		r.problems.Add(1)
	}
}
func (r *recorder) exit() { r.inCall.Add(-1) }

func (r *recorder) OnOpen(c *Conn) {
	r.enter()
	defer r.exit()
	r.conn.Store(c)
	if r.shut {
		c.Close(4000, "shut at open")
	}
}

func (r *recorder) OnMessage(msg []byte) {
	r.enter()
	defer r.exit()
	r.mu.Lock()
	r.msgs = append(r.msgs, string(msg))
	r.mu.Unlock()
	if r.hold != nil {
		<-r.hold
	}
	if r.echo {
		f, p := NewTextFrame(len(msg))
		copy(p, msg)
		_ = r.conn.Load().Send(f)
	}
}

func (r *recorder) OnClose(err error) {
	r.enter()
	defer r.exit()
	var ce *CloseError
	if !errors.As(err, &ce) {
		ce = &CloseError{Reason: "not a *CloseError: " + err.Error()}
	}
	r.closeErr.Store(ce)
	close(r.closed)
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitClosed waits for OnClose and returns its error.
func (r *recorder) waitClosed(t testing.TB) *CloseError {
	t.Helper()
	select {
	case <-r.closed:
		return r.closeErr.Load()
	case <-time.After(10 * time.Second):
		t.Fatal("OnClose not called")
		return nil
	}
}

// env is a Server behind a real loopback HTTP server.
type env struct {
	t   testing.TB
	srv *Server
	hs  *httptest.Server
	url string

	mu   sync.Mutex
	recs []*recorder
	echo bool
	hold chan struct{} // given to every recorder
	shut bool          // given to every recorder
}

func newEnv(t testing.TB, cfg Config, echo bool) *env {
	t.Helper()
	return startEnv(t, cfg, echo, (*httptest.Server).Start)
}

// startEnv builds the Server and an HTTP server that upgrades every request
// to it, and starts the latter with start (Start or StartTLS).
func startEnv(t testing.TB, cfg Config, echo bool, start func(*httptest.Server)) *env {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, echo: echo}
	e.hs = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := newRecorder(e.echo)
		rec.hold, rec.shut = e.hold, e.shut
		e.mu.Lock()
		e.recs = append(e.recs, rec)
		e.mu.Unlock()
		_, _ = srv.Upgrade(w, r, rec)
	}))
	start(e.hs)
	// http://host gives ws://host, https://host wss://host.
	e.url = "ws" + strings.TrimPrefix(e.hs.URL, "http") + "/ws"
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	e.hs.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, r := range e.recs {
		if n := r.problems.Load(); n != 0 {
			e.t.Errorf("connection %d: %d handler contract violations", i, n)
		}
	}
}

// rec returns the server side of the i-th connection once it is open.
func (e *env) rec(i int) *recorder {
	e.t.Helper()
	var r *recorder
	wstest.WaitFor(e.t, 5*time.Second, "server side of connection", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		if i < len(e.recs) && e.recs[i].conn.Load() != nil {
			r = e.recs[i]
		}
		return r != nil
	})
	return r
}

// client is a raw WebSocket client for hand-made frames.
type client struct {
	t    testing.TB
	conn net.Conn
	r    io.Reader
}

func (e *env) dial() *client {
	e.t.Helper()
	return e.dialWith(ws.Dialer{})
}

// dialN connects n clients and returns them with their server sides.
func (e *env) dialN(n int) ([]*client, []*Conn) {
	e.t.Helper()
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.dial()
	}
	return clients, e.conns(n)
}

// dialWith connects with d; the connection is closed when the test ends.
func (e *env) dialWith(d ws.Dialer) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, e.url)
	if err != nil {
		e.t.Fatalf("dial %s: %v", e.url, err)
	}
	c := &client{t: e.t, conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	return c
}

// write sends f masked, as a client must (use writeRaw to break the rules).
func (c *client) write(f ws.Frame) {
	c.t.Helper()
	c.writeRaw(ws.MaskFrame(f))
}

func (c *client) writeRaw(f ws.Frame) {
	c.t.Helper()
	if err := ws.WriteFrame(c.conn, f); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

func (c *client) sendText(s string) { c.t.Helper(); c.write(ws.NewTextFrame([]byte(s))) }

func (c *client) read() ws.Frame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := ws.ReadFrame(c.r)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (c *client) readText() string {
	c.t.Helper()
	f := c.read()
	if f.Header.OpCode != ws.OpText {
		c.t.Fatalf("got opcode %v, want text", f.Header.OpCode)
	}
	return string(f.Payload)
}

// readClose reads until a close frame, skipping data and pings.
func (c *client) readClose() (ws.StatusCode, string) {
	c.t.Helper()
	for {
		f := c.read()
		if f.Header.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(f.Payload)
			return code, reason
		}
	}
}

// expectClose reads the server's close frame, checks its code, and checks
// that the server then closes the TCP connection.
func (c *client) expectClose(want StatusCode) string {
	c.t.Helper()
	code, reason := c.readClose()
	if code != ws.StatusCode(want) {
		c.t.Fatalf("close code %d (%q), want %d", code, reason, want)
	}
	c.expectEOF()
	return reason
}

func (c *client) expectEOF() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, bufio.NewReader(c.r))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("server did not close the TCP connection")
	}
}

// slowConsumerWriteTimeout is the WriteTimeout of slowConsumerRun's server.
// The slow connection's writer blocks on a full socket from the moment its
// queue overflows until its client reads at last, after the fast client
// got every frame; the close frame is behind that blocked write, so the
// write must not time out first, however loaded the machine.
const slowConsumerWriteTimeout = time.Minute

// slowConsumerRun sends numbered frames of frameSize bytes to two
// connections until the slow one, whose client never reads, overflows its
// queue; the fast one is read in order by its client and never allowed to
// fall more than lag frames behind. It checks the slow one was cut as a
// slow consumer, counted once, that the fast client got every frame, and
// that the slow client finds the close frame when it reads at last.
func slowConsumerRun(t *testing.T, e *env, slow, fast *client, frameSize, lag int) {
	t.Helper()
	slowConn, fastConn := e.rec(0).conn.Load(), e.rec(1).conn.Load()
	var received atomic.Int64
	readerDone := make(chan error, 1)
	go func() { readerDone <- readInOrder(fast, &received) }()
	maxFrames := 100_000_000 / frameSize // 100 MB: more than any socket buffer holds
	sent, full := 0, false
	for ; sent < maxFrames && !full; sent++ {
		f, p := NewTextFrame(frameSize)
		copy(p, fmt.Sprintf("%08d", sent))
		switch err := slowConn.Send(f); {
		case errors.Is(err, ErrQueueFull):
			full = true
		case err != nil:
			t.Fatalf("slow Send: %v", err)
		}
		if err := fastConn.Send(f); err != nil {
			t.Fatalf("fast Send %d: %v", sent, err)
		}
		if sent%(lag/2) == lag/2-1 {
			wstest.WaitFor(t, 10*time.Second, "fast client to catch up", func() bool {
				return received.Load() > int64(sent-lag)
			})
		}
	}
	if !full {
		t.Fatalf("no ErrQueueFull after %d frames", sent)
	}
	got := e.rec(0).waitClosed(t)
	if got.Code != ClosePolicyViolation || got.Reason != ReasonSlowConsumer {
		t.Fatalf("slow client OnClose(%+v)", *got)
	}
	if n := e.srv.Stats().SlowConsumerCloses; n != 1 {
		t.Fatalf("SlowConsumerCloses = %d, want 1", n)
	}
	wstest.WaitFor(t, 10*time.Second, "fast client to get every frame", func() bool {
		return received.Load() == int64(sent)
	})
	fastConn.Close(CloseNormal, "")
	if err := <-readerDone; err != nil {
		t.Fatalf("fast client: %v", err)
	}
	slow.expectClose(ClosePolicyViolation)
}

// readInOrder reads frames numbered from 0 until a close frame, counting
// them in received.
func readInOrder(c *client, received *atomic.Int64) error {
	for i := 0; ; i++ {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := ws.ReadFrame(c.r)
		if err != nil {
			return err
		}
		if f.Header.OpCode == ws.OpClose {
			return nil
		}
		if want := fmt.Sprintf("%08d", i); len(f.Payload) < 8 || string(f.Payload[:8]) != want {
			return fmt.Errorf("frame %.8q, want %q", f.Payload, want)
		}
		received.Add(1)
	}
}

// shutdownRun connects three clients with dial, queues one frame to each,
// shuts the server down and checks each client gets its frame, then 1001
// "going away", and that OnClose ran before Shutdown returned. Clients not
// reading yet must not hold Shutdown up past the linger (a TLS close may
// write an alert).
func shutdownRun(t *testing.T, e *env, dial func() *client) {
	t.Helper()
	var clients []*client
	for i := range 3 {
		clients = append(clients, dial())
		f, p := NewTextFrame(5)
		copy(p, "queue")
		if err := e.rec(i).conn.Load().Send(f); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// They hold it for the linger at most: not reading, they cannot close.
	if d := time.Since(start); d > e.srv.cfg.CloseLinger+2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	for i, c := range clients {
		if got := c.readText(); got != "queue" {
			t.Fatalf("client %d got %q, want the queued frame first", i, got)
		}
		if reason := c.expectClose(CloseGoingAway); reason != ReasonGoingAway {
			t.Fatalf("reason %q", reason)
		}
		// Shutdown waited for OnClose: no waiting here.
		if got := e.rec(i).closeErr.Load(); got == nil || got.Code != CloseGoingAway {
			t.Fatalf("client %d OnClose %v after Shutdown returned", i, got)
		}
	}
}
