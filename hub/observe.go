package hub

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Observer receives the hub's timings, for histograms (package metrics
// has one for Prometheus). Its methods are called on hot paths, from many
// goroutines at once: they must be fast and never block. With
// Config.Observer nil the hub reads no clock for them.
type Observer interface {
	// SubscribeAcked is the time from a client's sub arriving to its ack
	// being queued: the wait for every peer's confirmation, mostly.
	SubscribeAcked(wait time.Duration)
	// PublishQueued is the time a publish made on this node (by a client
	// or Publish) took to be encoded, handed to the peer links, and queued
	// to every local subscriber.
	// One publish in publishSample is timed, not each.
	PublishQueued(d time.Duration)
}

// publishSample: one publish in this many is timed for
// Observer.PublishQueued. Reading the clock twice costs about 80 ns on a
// virtual machine, a tenth of a publish to one subscriber; sampled, it is
// 5 ns a publish, and a distribution needs no more.
const publishSample = 16

// samplePublish returns the time to measure the n-th publish from, or
// the zero time when it is not sampled or no Observer would use it.
func (h *Hub) samplePublish(n uint64) time.Time {
	if h.cfg.Observer == nil || n%publishSample != 0 {
		return time.Time{}
	}
	return time.Now()
}

// startTimer returns the time to measure from, or the zero time when no
// Observer would use it (no clock read).
func (h *Hub) startTimer() time.Time {
	if h.cfg.Observer == nil {
		return time.Time{}
	}
	return time.Now()
}

func (h *Hub) observeSubAck(start time.Time) {
	if h.cfg.Observer != nil && !start.IsZero() {
		h.cfg.Observer.SubscribeAcked(time.Since(start))
	}
}

// errCodes counts the err frames sent to clients by code: the protocol's
// codes each, and every other code (a hook's own) together, so the set
// stays small enough to be a metric label.
type errCodes struct {
	n [6]atomic.Uint64 // 400, 403, 413, 429, 503, other
}

// errCodeOther is the key of codes outside the protocol's in Stats.ErrCodes.
const errCodeOther = "other"

func errSlot(code int) int {
	switch code {
	case CodeBadRequest:
		return 0
	case CodeForbidden:
		return 1
	case CodeTooLarge:
		return 2
	case CodeRateLimited:
		return 3
	case CodeUnavailable:
		return 4
	}
	return 5
}

func (e *errCodes) add(code int) { e.n[errSlot(code)].Add(1) }

// snapshot maps "400", ..., "other" to their counts, zeros included.
func (e *errCodes) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(e.n))
	for _, code := range []int{CodeBadRequest, CodeForbidden, CodeTooLarge, CodeRateLimited, CodeUnavailable} {
		m[strconv.Itoa(code)] = e.n[errSlot(code)].Load()
	}
	m[errCodeOther] = e.n[5].Load()
	return m
}

// sendErr answers req with an err frame and counts it.
func (s *session) sendErr(req *request, code int, reason string) {
	s.hub.metrics.errs.add(code)
	s.send(errFrame(req, code, reason))
}
