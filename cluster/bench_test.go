package cluster

import (
	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"

	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

type countingReceiver struct{ n atomic.Int64 }

func (r *countingReceiver) Deliver(string, []byte, string, *relay.Stamp) { r.n.Add(1) }
func (r *countingReceiver) Gap([]string)                                 {}
func (r *countingReceiver) History(string, history.Frontier, int) history.Result {
	return history.Result{}
}

// BenchmarkLinkForward measures publishes forwarded between two real nodes
// on loopback (100-byte payloads). The publisher yields when the link queue
// is half full so the figure is the link's sustained rate, not drops.
func BenchmarkLinkForward(b *testing.B) {
	a := startNode(b, testConfig("a"))
	cfgB := testConfig("b")
	cfgB.Join = []string{a.gossipAddr()}
	cb, err := New(cfgB)
	if err != nil {
		b.Fatal(err)
	}
	recv := &countingReceiver{}
	if _, err := cb.Attach(recv, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdown(b, cb) })
	bn := &node{Cluster: cb, rec: &recorder{}}
	waitFor(b, 20*time.Second, "link", func() bool { return fullyLinked(a, 2) && fullyLinked(bn, 2) })
	subscribe(b, bn, "bench")
	p := a.peer("b")
	payload := make([]byte, 100)
	half := a.cfg.LinkQueueSize / 2

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i%256 == 0 {
			for oc := p.out.Load(); oc != nil && oc.q.len() > half; {
				runtime.Gosched()
			}
		}
		a.publish("bench", payload, "", nil, nil)
	}
	want := int64(b.N)
	deadline := time.Now().Add(time.Minute)
	for recv.n.Load() < want {
		if d := p.drops.Load() + p.dropsDown.Load(); d > 0 {
			b.Fatalf("dropped %d", d)
		}
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d publishes in a minute", recv.n.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
