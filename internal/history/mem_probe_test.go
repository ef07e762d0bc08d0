package history

import (
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkStoreHeapPerMessage reports the live heap per stored 100-byte
// message with 1,000 channels of 1,000 (the RSS figure of BENCHMARKS.md
// comes from meshcast-bench history, on a real node).
func BenchmarkStoreHeapPerMessage(b *testing.B) {
	const n = 1000000
	names := make([]string, 1000)
	for i := range names {
		names[i] = "mem:" + strconv.Itoa(i)
	}
	for range b.N {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		s := New(1 << 31)
		for i := range n {
			s.Append(names[i%1000], Limits{Max: 1000}, Msg{Stream: 1, Seq: uint64(i/1000 + 1), Time: int64(i), Data: make([]byte, 100)})
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heapB/msg")
		runtime.KeepAlive(s)
	}
}
