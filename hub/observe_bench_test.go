package hub

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFanOutObserved is BenchmarkFanOut with an Observer set: the
// difference is what the publish-to-enqueue timing costs (two clock reads
// and the observer's call, for one publish in publishSample;
// metrics.Histograms' Observe is about 30 ns).
func BenchmarkFanOutObserved(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			benchFanOutWith(b, n, &countingObserver{})
		})
	}
}

// countingObserver is the cheapest real Observer: one atomic add.
type countingObserver struct{ n atomic.Int64 }

func (o *countingObserver) SubscribeAcked(time.Duration)  {}
func (o *countingObserver) PublishQueued(d time.Duration) { o.n.Add(int64(d)) }
