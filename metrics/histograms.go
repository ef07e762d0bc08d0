package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
)

// Histograms are the distributions measured per event. They implement
// hub.Observer and cluster.Observer.
type Histograms struct {
	subAck    prometheus.Histogram
	pubQueued prometheus.Histogram
	linkRTT   *prometheus.HistogramVec
}

var (
	_ hub.Observer     = (*Histograms)(nil)
	_ cluster.Observer = (*Histograms)(nil)
)

// NewHistograms creates the histograms and registers them on reg.
func NewHistograms(reg prometheus.Registerer) (*Histograms, error) {
	// A sub's ack is immediate with no peers to wait for, one LAN round
	// trip with them, and at most the 2 s interest timeout.
	waitBuckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	h := &Histograms{
		subAck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshcast_subscribe_ack_wait_seconds",
			Help:    "Time from a client's sub to its ack: mostly the wait for every peer to confirm the interest.",
			Buckets: waitBuckets,
		}),
		// Queueing a publish costs about a microsecond plus a few
		// nanoseconds per local subscriber.
		pubQueued: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshcast_publish_enqueue_seconds",
			Help:    "Time to encode a publish made on this node and queue it to every local subscriber (one publish in 16 is timed).",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, .001, .0025, .005, .01, .1},
		}),
		linkRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshcast_peer_round_trip_seconds",
			Help:    "Time from queueing an interest message for a peer to its ack (queues, network and the peer's reader).",
			Buckets: waitBuckets,
		}, []string{"peer"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{h.subAck, h.pubQueued, h.linkRTT} {
		errs = append(errs, reg.Register(c))
	}
	return h, errors.Join(errs...)
}

// SubscribeAcked implements hub.Observer.
func (h *Histograms) SubscribeAcked(d time.Duration) { h.subAck.Observe(d.Seconds()) }

// PublishQueued implements hub.Observer. It is on the publish path: one
// atomic histogram update, no allocation.
func (h *Histograms) PublishQueued(d time.Duration) { h.pubQueued.Observe(d.Seconds()) }

// LinkRoundTrip implements cluster.Observer.
func (h *Histograms) LinkRoundTrip(peer string, d time.Duration) {
	h.linkRTT.WithLabelValues(peer).Observe(d.Seconds())
}
