package cluster

import (
	"sync"
	"time"
)

// Observer receives the cluster's timings, for histograms (package
// metrics has one for Prometheus). It is called from link goroutines,
// concurrently: it must be fast and never block. With Config.Observer nil
// no clock is read for it.
type Observer interface {
	// LinkRoundTrip is the time from queueing an interest message (or the
	// snapshot that opens a link) for peer to receiving the peer's ack of
	// it: both nodes' queues, the network and the peer's reader, which is
	// what a subscribe's ack waits for.
	LinkRoundTrip(peer string, d time.Duration)
}

// rttProbe times one interest message of a link at a time, so measuring
// costs a clock read per interest change, never per publish, and no
// memory per message in flight.
type rttProbe struct {
	// mu guards seq and at; it is never held while taking another lock.
	mu  sync.Mutex
	seq uint64 // the timed message's seq; 0: none in flight
	at  time.Time
}

// startProbe times the message seq unless one is in flight already.
func (oc *outConn) startProbe(seq uint64) {
	if oc.p.c.cfg.Observer == nil {
		return
	}
	oc.probe.mu.Lock()
	if oc.probe.seq == 0 {
		oc.probe.seq, oc.probe.at = seq, time.Now()
	}
	oc.probe.mu.Unlock()
}

// endProbe reports the timed message's round trip once an ack covers it.
func (oc *outConn) endProbe(acked uint64) {
	obs := oc.p.c.cfg.Observer
	if obs == nil {
		return
	}
	oc.probe.mu.Lock()
	seq, at := oc.probe.seq, oc.probe.at
	if seq != 0 && acked >= seq {
		oc.probe.seq = 0
	}
	oc.probe.mu.Unlock()
	if seq != 0 && acked >= seq {
		obs.LinkRoundTrip(oc.p.name, time.Since(at))
	}
}
