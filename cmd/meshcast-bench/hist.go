package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// The histogram is log-linear (HDR style): values below 2^histSubBits are
// exact, and each power of two above is split into 2^(histSubBits-1) equal
// buckets, so any value is known to within 1/64 (~1.6%). A fixed bucket
// layout makes histograms from different processes mergeable by index.
const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1)
	histBuckets = (64 - histSubBits + 2) * histHalf
)

// bucketIndex maps a value to its bucket.
func bucketIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits
	return e*histHalf + int(v>>uint(e))
}

// bucketLow is the smallest value that falls into bucket i.
func bucketLow(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	e := i/histHalf - 1
	m := uint64(i - e*histHalf)
	return m << uint(e)
}

// bucketHigh is the largest value that falls into bucket i.
func bucketHigh(i int) uint64 {
	if i >= histBuckets-1 {
		return math.MaxUint64
	}
	return bucketLow(i+1) - 1
}

// Hist is a plain (single goroutine) latency histogram in nanoseconds.
type Hist struct {
	counts [histBuckets]uint64
	total  uint64
	sum    uint64
	max    uint64
}

// Record adds one value.
func (h *Hist) Record(v uint64) {
	h.counts[bucketIndex(v)]++
	h.total++
	h.sum += v
	if v > h.max {
		h.max = v
	}
}

// Merge adds every count of o to h.
func (h *Hist) Merge(o *Hist) {
	if o == nil {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// Count is the number of recorded values.
func (h *Hist) Count() uint64 { return h.total }

// Max is the exact largest recorded value.
func (h *Hist) Max() uint64 { return h.max }

// Mean is the exact mean of the recorded values.
func (h *Hist) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.total)
}

// Quantile returns the upper bound of the bucket holding the q-th value
// (0 < q <= 1), clamped to the exact maximum, like HDR's "highest equivalent
// value": it never under-reports.
func (h *Hist) Quantile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}

// histJSON is the sparse wire form used between worker and coordinator.
type histJSON struct {
	B   [][2]uint64 `json:"b,omitempty"` // [bucket index, count]
	Sum uint64      `json:"sum"`
	Max uint64      `json:"max"`
}

// toJSON returns the sparse form of h.
func (h *Hist) toJSON() *histJSON {
	j := &histJSON{Sum: h.sum, Max: h.max}
	for i, c := range h.counts {
		if c != 0 {
			j.B = append(j.B, [2]uint64{uint64(i), c})
		}
	}
	return j
}

// mergeJSON adds a sparse histogram; out-of-range buckets from a corrupt
// message are ignored rather than trusted.
func (h *Hist) mergeJSON(j *histJSON) {
	if j == nil {
		return
	}
	for _, b := range j.B {
		if b[0] >= histBuckets {
			continue
		}
		h.counts[b[0]] += b[1]
		h.total += b[1]
	}
	h.sum += j.Sum
	if j.Max > h.max {
		h.max = j.Max
	}
}

// atomicHist is recorded into by many subscriber goroutines at once.
type atomicHist struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

// Record adds one value; lock-free.
func (a *atomicHist) Record(v uint64) {
	a.counts[bucketIndex(v)].Add(1)
	a.sum.Add(v)
	for {
		m := a.max.Load()
		if v <= m || a.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// addTo merges the current counts into h.
func (a *atomicHist) addTo(h *Hist) {
	for i := range a.counts {
		c := a.counts[i].Load()
		h.counts[i] += c
		h.total += c
	}
	h.sum += a.sum.Load()
	if m := a.max.Load(); m > h.max {
		h.max = m
	}
}
