package transport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/transport/uring"
	"github.com/meshcast/meshcast/transport/wstest"
)

// sourcedFrame is frame number seq of sender src: "src,seq," padded to size.
func sourcedFrame(src, seq, size int) []byte {
	f, p := NewTextFrame(size)
	s := strconv.Itoa(src) + "," + strconv.Itoa(seq) + ","
	copy(p, s+strings.Repeat("x", max(0, size-len(s))))
	return f
}

// readSourced reads frames until a close frame (or, with stopAt > 0, until
// stopAt frames arrived) and checks that each sender's frames come in
// order, none lost or repeated between the first and the last seen; it
// returns the count per sender and whether a close frame ended the stream.
func readSourced(c *client, senders, stopAt int) (counts []int, closed bool, err error) {
	counts = make([]int, senders)
	total := 0
	for stopAt <= 0 || total < stopAt {
		_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		f, err := ws.ReadFrame(c.r)
		if err != nil {
			return counts, false, err
		}
		if f.Header.OpCode == ws.OpClose {
			return counts, true, nil
		}
		parts := strings.SplitN(string(f.Payload), ",", 3)
		if len(parts) != 3 {
			return counts, false, fmt.Errorf("frame %q", f.Payload)
		}
		src, _ := strconv.Atoi(parts[0])
		seq, _ := strconv.Atoi(parts[1])
		if src < 0 || src >= senders || seq != counts[src] {
			return counts, false, fmt.Errorf("frame %d of sender %d, want %d", seq, src, counts[src])
		}
		counts[src]++
		total++
	}
	return counts, false, nil
}

// conns returns the server side of the first n connections.
func (e *env) conns(n int) []*Conn {
	out := make([]*Conn, n)
	for i := range out {
		out[i] = e.rec(i).conn.Load()
	}
	return out
}

// TestBurstOrderConcurrent: bursts from several goroutines (and Sends from
// one more) to the same connections arrive complete and, per sender, in
// order on every connection, while the claims of idle connections and the
// queues of busy ones interleave.
func TestBurstOrderConcurrent(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteQueueSize = 4 << 20
		e := newEnv(t, cfg, false)
		const nconns, senders, frames = 40, 4, 300
		clients, conns := e.dialN(nconns)
		results := make(chan error, nconns)
		for _, c := range clients {
			go func() {
				counts, _, err := readSourced(c, senders+1, (senders+1)*frames)
				if err == nil {
					for src, n := range counts {
						if n != frames {
							err = fmt.Errorf("sender %d: %d frames, want %d", src, n, frames)
						}
					}
				}
				results <- err
			}()
		}
		var wg sync.WaitGroup
		for src := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range frames {
					e.srv.Burst(conns, sourcedFrame(src, seq, 20+seq%200))
				}
			}()
		}
		wg.Add(1)
		go func() { // a Send to each, as a hub's acks and replies are
			defer wg.Done()
			for seq := range frames {
				f := sourcedFrame(senders, seq, 30)
				for _, c := range conns {
					if err := c.Send(f); err != nil {
						t.Errorf("Send: %v", err)
						return
					}
				}
			}
		}()
		wg.Wait()
		for range nconns {
			if err := <-results; err != nil {
				t.Fatal(err)
			}
		}
		if n := e.srv.Stats().SlowConsumerCloses; n != 0 {
			t.Fatalf("%d slow-consumer closes", n)
		}
	})
}

// TestBurstSlowConsumer: a connection whose client never reads, among
// others that do, is cut off as a slow consumer by bursts exactly as by
// Sends: close 1008 once, after the frames its socket took; the others get
// every frame in order.
func TestBurstSlowConsumer(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteTimeout = slowConsumerWriteTimeout
		e := newEnv(t, cfg, false)
		slow := e.dial()
		fast := []*client{e.dial(), e.dial()}
		conns := e.conns(3)
		var received [2]atomic.Int64
		done := make(chan error, 2)
		for i, c := range fast {
			go func() { done <- readInOrder(c, &received[i]) }()
		}
		const size, lag = 1000, 16 // the fast ones never hold a quarter of the 64 KiB queue
		sent := 0
		for ; e.srv.Stats().SlowConsumerCloses == 0; sent++ {
			if sent > 100_000 {
				t.Fatal("no slow-consumer close after 100 MB")
			}
			f, p := NewTextFrame(size)
			copy(p, fmt.Sprintf("%08d", sent))
			e.srv.Burst(conns, f)
			if sent%(lag/2) == lag/2-1 {
				wstest.WaitFor(t, 10*time.Second, "fast clients to catch up", func() bool {
					return received[0].Load() > int64(sent-lag) && received[1].Load() > int64(sent-lag)
				})
			}
		}
		got := e.rec(0).waitClosed(t)
		if got.Code != ClosePolicyViolation || got.Reason != ReasonSlowConsumer {
			t.Fatalf("slow client OnClose(%+v)", *got)
		}
		// Later bursts skip the closing connection.
		f, p := NewTextFrame(size)
		copy(p, fmt.Sprintf("%08d", sent))
		e.srv.Burst(conns, f)
		sent++
		if n := e.srv.Stats().SlowConsumerCloses; n != 1 {
			t.Fatalf("SlowConsumerCloses = %d, want 1", n)
		}
		wstest.WaitFor(t, 10*time.Second, "fast clients to get every frame", func() bool {
			return received[0].Load() == int64(sent) && received[1].Load() == int64(sent)
		})
		for _, c := range conns[1:] {
			c.Close(CloseNormal, "")
		}
		for range fast {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		slow.expectClose(ClosePolicyViolation)
	})
}

// TestBurstCloseMidBurst: connections closed by the server (Close) or by
// their client (TCP close) while bursts are being written: the server-closed
// ones get a gap-free prefix of the frames and then the close frame, last;
// the others lose nothing; nothing panics, leaks or blocks Shutdown.
func TestBurstCloseMidBurst(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteQueueSize = 4 << 20
		e := newEnv(t, cfg, false)
		const nconns, frames = 30, 400
		clients, conns := e.dialN(nconns)
		type result struct {
			i      int
			n      int
			closed bool
			err    error
		}
		results := make(chan result, nconns)
		for i, c := range clients {
			if i%3 == 2 {
				continue // dropped by its client below
			}
			go func() {
				counts, closed, err := readSourced(c, 1, 0)
				results <- result{i, counts[0], closed, err}
			}()
		}
		go func() {
			for seq := range frames {
				e.srv.Burst(conns, sourcedFrame(0, seq, 100))
				if seq == frames/2 {
					for i, c := range conns {
						switch i % 3 {
						case 1:
							c.Close(CloseNormal, "mid-burst")
						case 2:
							_ = clients[i].conn.Close()
						}
					}
				}
			}
			for i, c := range conns {
				if i%3 == 0 {
					c.Close(CloseGoingAway, "done")
				}
			}
		}()
		for range nconns - nconns/3 {
			r := <-results
			switch {
			case r.err != nil:
				t.Fatalf("client %d: %v", r.i, r.err)
			case !r.closed:
				t.Fatalf("client %d: no close frame", r.i)
			case r.i%3 == 0 && r.n != frames:
				t.Fatalf("client %d got %d frames, want %d", r.i, r.n, frames)
			case r.i%3 == 1 && r.n < frames/2:
				t.Fatalf("client %d got %d frames before the close, want at least %d", r.i, r.n, frames/2)
			}
		}
		for i := range nconns {
			e.rec(i).waitClosed(t)
		}
	})
}

// TestBurstTLS: connections without a file descriptor are never claimed;
// a burst queues to them, and they get every frame in order.
func TestBurstTLS(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newTLSEnv(t, cfg, false)
		const nconns, frames = 5, 200
		clients := make([]*client, nconns)
		for i := range clients {
			clients[i] = e.dialTLS()
		}
		conns := e.conns(nconns)
		done := make(chan error, nconns)
		for _, c := range clients {
			go func() {
				counts, _, err := readSourced(c, 1, frames)
				if err == nil && counts[0] != frames {
					err = fmt.Errorf("%d frames", counts[0])
				}
				done <- err
			}()
		}
		for seq := range frames {
			e.srv.Burst(conns, sourcedFrame(0, seq, 300))
		}
		for range nconns {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestBurstSkipsClosed: a burst to a connection already closing sends it
// nothing more, as Send returns ErrClosed.
func TestBurstSkipsClosed(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, false)
		c := e.dial()
		conn := e.conns(1)[0]
		conn.Close(CloseNormal, "bye")
		if err := conn.Send(sourcedFrame(0, 0, 10)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
		e.srv.Burst([]*Conn{conn}, sourcedFrame(0, 0, 10))
		f := c.read()
		if f.Header.OpCode != ws.OpClose {
			t.Fatalf("got opcode %v, want the close frame only", f.Header.OpCode)
		}
		c.expectEOF()
	})
}

// BenchmarkBurst measures one fan-out's time to its last delivery: a frame
// to 1,000 idle loopback connections whose clients read in this process,
// then a wait until every client has it, so nothing coalesces. "burst" is
// Server.Burst, "sends" a loop of Conn.Send (the path before it).
func BenchmarkBurst(b *testing.B) {
	for _, mode := range []string{"burst", "burst-write", "sends"} {
		b.Run(mode, func(b *testing.B) { benchBurst(b, mode != "sends", mode == "burst-write", 1000, 100) })
	}
}

func benchBurst(b *testing.B, burst, noRing bool, nconns, size int) {
	cfg := testConfig(false)
	cfg.Writers, cfg.Workers = 0, 0 // defaults
	cfg.NoIOURing = noRing
	e := newEnv(b, cfg, false)
	frame := sourcedFrame(0, 0, size)
	var got atomic.Int64
	all := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range nconns {
		c := e.dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4<<10)
			fl := len(frame)
			have := 0
			for {
				n, err := c.r.Read(buf)
				for have += n; have >= fl; have -= fl {
					if got.Add(1)%int64(nconns) == 0 {
						all <- struct{}{}
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	conns := e.conns(nconns)
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close(CloseNormal, "")
		}
		wg.Wait()
	})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if burst {
			e.srv.Burst(conns, frame)
		} else {
			for _, c := range conns {
				if err := c.Send(frame); err != nil {
					b.Fatal(err)
				}
			}
		}
		<-all
	}
	el := time.Since(start)
	b.ReportMetric(float64(el.Microseconds())/float64(b.N), "µs/burst")
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/float64(nconns), "ns/delivery")
}

// TestBurstDoesNotClaimBusy: a connection a writer is flushing is never
// claimed for a direct write (it would put the frame before, or in the
// middle of, what is being written); the frame is queued behind.
func TestBurstDoesNotClaimBusy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(false), false)
	c := e.dial()
	conn := e.conns(1)[0]
	// Stand in for a writer that owns the flush.
	conn.mu.Lock()
	conn.writing = true
	conn.mu.Unlock()
	if conn.sendOrClaim(sourcedFrame(0, 0, 10)) {
		t.Fatal("claimed a connection being written")
	}
	// Idle once more with a frame queued: the owner requeues it, as
	// batchDone's caller does.
	e.srv.ready.push(conn)
	if counts, _, err := readSourced(c, 1, 1); err != nil || counts[0] != 1 {
		t.Fatalf("got %v, %v", counts, err)
	}
}

// TestBurstUsesTheRing: where io_uring is available, a burst to idle
// connections goes out through it, and so do Sends (the ready list's
// connections); with it turned off neither does. Every connection gets
// every frame.
func TestBurstUsesTheRing(t *testing.T) {
	t.Parallel()
	if r, err := uring.New(4); err != nil {
		t.Skipf("io_uring not available here: %v", err)
	} else {
		r.Close()
	}
	for _, noRing := range []bool{false, true} {
		cfg := testConfig(false)
		cfg.NoIOURing = noRing
		e := newEnv(t, cfg, false)
		const nconns = 50
		clients, conns := e.dialN(nconns)
		for seq := range 5 {
			e.srv.Burst(conns, sourcedFrame(0, 0, 100)) // each read alone: seq 0
			for i, c := range clients {
				if counts, _, err := readSourced(c, 1, 1); err != nil || counts[0] != 1 {
					t.Fatalf("client %d, burst %d: %v, %v", i, seq, counts, err)
				}
			}
		}
		st := e.srv.Stats()
		switch {
		case noRing && st.RingWrites != 0:
			t.Fatalf("NoIOURing: %d ring writes", st.RingWrites)
		case !noRing && st.RingWrites == 0:
			t.Fatalf("no ring writes in %d writes", st.Writes)
		}
		for _, c := range conns {
			if err := c.Send(sourcedFrame(0, 0, 100)); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range clients {
			if counts, _, err := readSourced(c, 1, 1); err != nil || counts[0] != 1 {
				t.Fatalf("client %d, send: %v, %v", i, counts, err)
			}
		}
		sent := e.srv.Stats().RingWrites - st.RingWrites
		switch {
		case noRing && sent != 0:
			t.Fatalf("NoIOURing: %d ring writes of sends", sent)
		case !noRing && sent == 0:
			t.Fatal("no ring writes of sends")
		}
	}
}
