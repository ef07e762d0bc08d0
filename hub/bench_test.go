package hub

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// BenchmarkFanOut publishes 100-byte messages to one channel with N real
// loopback subscribers. allocs/op staying flat as N grows shows the
// encode-once path costs nothing per recipient.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanOut(b, n) })
	}
}

func benchFanOut(b *testing.B, n int) {
	cfg := DefaultConfig()
	cfg.Transport.WriteQueueSize = 64 << 20 // measure throughput, not slow-consumer cuts
	h, url := testHub(b, cfg)
	var received atomic.Int64
	var wg sync.WaitGroup
	for range n {
		c := dial(b, url)
		c.MustAck(`{"op":"sub","ch":"bench","id":1}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReaderSize(c.Conn, 64<<10)
			for {
				hdr, err := ws.ReadHeader(r)
				if err != nil {
					return
				}
				if _, err := r.Discard(int(hdr.Length)); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	data := []byte(`{"t":1732665000000000000,"s":1,"p":1,"x":"` + strings.Repeat("x", 54) + `"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := h.Publish(ctx, "bench", data); err != nil {
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
