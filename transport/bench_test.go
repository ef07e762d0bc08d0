package transport

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSendFanout sends one shared 100-byte frame per iteration to 1,000
// real loopback connections whose clients read in their own goroutines (in
// this process, so they share the CPU with the server). It reports
// deliveries per second and how many deliveries one write carried.
func BenchmarkSendFanout(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) { benchFanout(b, m.goroutines, m.noRing, 1000, 100, 2000) })
	}
	// Lockstep waits for every delivery of a frame before sending the next:
	// little coalescing, the cost of one delivery per write.
	b.Run("epoll-lockstep", func(b *testing.B) { benchFanout(b, false, false, 1000, 100, 0) })
	b.Run("epoll-write-lockstep", func(b *testing.B) { benchFanout(b, false, true, 1000, 100, 0) })
	// Lag 16: the sender is at most 16 frames ahead, a moderate load.
	b.Run("epoll-lag16", func(b *testing.B) { benchFanout(b, false, false, 1000, 100, 16) })
	b.Run("epoll-write-lag16", func(b *testing.B) { benchFanout(b, false, true, 1000, 100, 16) })
}

// benchFanout lets the clients fall at most lag frames behind the sender.
func benchFanout(b *testing.B, goroutines, noRing bool, nconns, size, lag int) {
	cfg := testConfig(goroutines)
	cfg.NoIOURing = noRing
	cfg.WriteQueueSize = 1 << 20
	cfg.Writers, cfg.Workers = 0, 0 // defaults
	e := newEnv(b, cfg, false)
	frame, payload := NewTextFrame(size)
	for i := range payload {
		payload[i] = 'x'
	}
	var received atomic.Int64 // bytes read by all clients
	var target atomic.Int64   // byte count the sender waits for
	reached := make(chan struct{}, 1)
	var wg sync.WaitGroup
	conns := make([]*Conn, nconns)
	for i := range nconns {
		c := e.dial()
		conns[i] = e.rec(i).conn.Load()
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.r.Read(buf)
				if received.Add(int64(n)) >= target.Load() {
					select {
					case reached <- struct{}{}:
					default:
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close(CloseNormal, "")
		}
		wg.Wait()
	})
	fl := int64(len(frame))
	target.Store(1 << 62)
	// waitFrames blocks (without spinning: that would steal the CPU the
	// writers and readers need) until the clients got that many frames.
	waitFrames := func(frames int64) {
		target.Store(frames * fl)
		for received.Load() < frames*fl {
			<-reached
		}
		target.Store(1 << 62)
	}
	writes0 := e.srv.Stats().Writes
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for _, c := range conns {
			if err := c.Send(frame); err != nil {
				b.Fatal(err)
			}
		}
		// Keep each queue well under WriteQueueSize.
		if step := max(1, lag/2); i%step == step-1 {
			waitFrames(int64(i+1-lag) * int64(nconns))
		}
	}
	want := int64(b.N) * int64(nconns)
	waitFrames(want)
	elapsed := time.Since(start)
	b.StopTimer()
	writes := e.srv.Stats().Writes - writes0
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(want)/float64(max(writes, 1)), "deliveries/write")
	if received.Load() != want*fl {
		b.Fatalf("received %d bytes, want %d", received.Load(), want*fl)
	}
}
