package hub

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFanOut publishes 100-byte messages to one channel with N real
// loopback subscribers. allocs/op staying flat as N grows shows the
// encode-once path costs nothing per recipient.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanOut(b, n) })
	}
}

func benchFanOut(b *testing.B, n int) { benchFanOutWith(b, n, nil) }

func benchFanOutWith(b *testing.B, n int, obs Observer) {
	cfg := DefaultConfig()
	cfg.Observer = obs
	cfg.Transport.WriteQueueSize = 64 << 20 // measure throughput, not slow-consumer cuts
	h, url := testHub(b, cfg)
	var received atomic.Int64
	var wg sync.WaitGroup
	benchSubscribers(b, url, n, 64<<10, &received, &wg)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := h.Publish(ctx, "bench", benchData); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N) * int64(n)
	deadline := time.Now().Add(time.Minute)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got := received.Load(); got < want {
		b.Fatalf("received %d of %d", got, want)
	}
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
	if c := h.transport.Stats().SlowConsumerCloses; c > 0 {
		b.Fatalf("%d slow consumer closes", c)
	}
	// Clients close with the hub; the reader goroutines end on EOF.
	_ = h.Shutdown(ctx)
	wg.Wait()
}

// BenchmarkPublishCall times the Publish call alone, each with every
// delivery of the one before read first, so the fan-out finds its
// connections idle as a burst does: the time a node spends handing one
// publish to N local subscribers. The relay gets the publish before this
// fan-out (Hub.publish), so it is also what subscribers on other nodes no
// longer wait for.
func BenchmarkPublishCall(b *testing.B) {
	for _, n := range []int{100, 1000, 8000} { // 8,000: two descriptors each, under 20,000 a process
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			cfg := DefaultConfig()
			// The readers below never answer a ping, and the 8,000 run
			// outlasts the two ping intervals after which the transport
			// would drop them.
			cfg.Transport.PingInterval = time.Hour
			h, url := testHub(b, cfg)
			var received atomic.Int64
			var wg sync.WaitGroup
			benchSubscribers(b, url, n, 4<<10, &received, &wg)
			ctx := context.Background()
			var want int64
			b.ResetTimer()
			for b.Loop() {
				if err := h.Publish(ctx, "bench", benchData); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				want += int64(n)
				deadline := time.Now().Add(time.Minute)
				for received.Load() < want && time.Now().Before(deadline) {
					runtime.Gosched()
				}
				if got := received.Load(); got < want {
					b.Fatalf("received %d of %d; transport %+v", got, want, h.transport.Stats())
				}
				b.StartTimer()
			}
			b.StopTimer()
			_ = h.Shutdown(ctx)
			wg.Wait()
		})
	}
}

// benchData is a 100-byte publish, shaped as the load tool's.
var benchData = []byte(`{"t":1732665000000000000,"s":1,"p":1,"x":"` + strings.Repeat("x", 54) + `"}`)

// benchSubscribers connects n clients subscribed to "bench", each read by
// a goroutine (in wg, ended by the hub's shutdown) that counts the frames
// with a payload in received.
func benchSubscribers(b *testing.B, url string, n, readBuf int, received *atomic.Int64, wg *sync.WaitGroup) {
	for range n {
		c := dial(b, url)
		c.MustAck(`{"op":"sub","ch":"bench","id":1}`)
		_ = c.Conn.SetReadDeadline(time.Time{}) // MustAck's 10 s deadline would end the reader
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReaderSize(c.Conn, readBuf)
			for {
				n, err := skipServerFrame(r)
				if err != nil {
					return
				}
				if n > 0 {
					received.Add(1)
				}
			}
		}()
	}
}

// skipServerFrame reads past one unmasked server frame without allocating
// (gobwas's ReadHeader allocates, and the readers share the process with
// the hub, so their allocations would count in allocs/op) and returns its
// payload length.
func skipServerFrame(r *bufio.Reader) (int, error) {
	h, err := r.Peek(2)
	if err != nil {
		return 0, err
	}
	n, hdr := int(h[1]&0x7f), 2
	switch n {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	if h, err = r.Peek(hdr); err != nil {
		return 0, err
	}
	switch hdr {
	case 4:
		n = int(binary.BigEndian.Uint16(h[2:]))
	case 10:
		n = int(binary.BigEndian.Uint64(h[2:]))
	}
	_, err = r.Discard(hdr + n)
	return n, err
}
