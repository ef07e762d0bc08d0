package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestBucketLayout(t *testing.T) {
	// Every bucket's bounds map back to it, and buckets tile the range.
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketLow(i), bucketHigh(i)
		if bucketIndex(lo) != i || bucketIndex(hi) != i {
			t.Fatalf("bucket %d: [%d,%d] maps to %d,%d", i, lo, hi, bucketIndex(lo), bucketIndex(hi))
		}
		if i > 0 && bucketHigh(i-1)+1 != lo {
			t.Fatalf("gap before bucket %d", i)
		}
		// Relative width bound: 1/64 above the exact range.
		if lo >= 1<<histSubBits && float64(hi-lo+1)/float64(lo) > 1.0/64+1e-12 {
			t.Fatalf("bucket %d too wide: [%d,%d]", i, lo, hi)
		}
	}
	if bucketIndex(math.MaxUint64) != histBuckets-1 {
		t.Fatalf("max value in bucket %d", bucketIndex(math.MaxUint64))
	}
}

func TestHistQuantiles(t *testing.T) {
	var h Hist
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(r.ExpFloat64() * 2e6) // ~2ms mean, long tail
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/64+1 {
			t.Errorf("q%.3f: got %d, exact %d", q, got, exact)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
		t.Fatalf("max %d count %d", h.Max(), h.Count())
	}
	var empty Hist
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Fatal("empty histogram not zero")
	}
}

func TestHistMerge(t *testing.T) {
	var a, b, all Hist
	var at atomicHist
	for v := uint64(0); v < 50000; v += 7 {
		if v%3 == 0 {
			a.Record(v * 1000)
		} else {
			b.Record(v * 1000)
		}
		all.Record(v * 1000)
		at.Record(v * 1000)
	}
	var m Hist
	m.Merge(&a)
	m.Merge(&b)
	if m != all {
		t.Fatal("merge differs from recording everything in one")
	}
	// Wire form and atomic histogram give the same result.
	var viaJSON, viaAtomic Hist
	viaJSON.mergeJSON(a.toJSON())
	viaJSON.mergeJSON(b.toJSON())
	at.addTo(&viaAtomic)
	if viaJSON != all || viaAtomic != all {
		t.Fatal("json or atomic form differs")
	}
	// Out-of-range buckets from a corrupt message are ignored.
	viaJSON.mergeJSON(&histJSON{B: [][2]uint64{{histBuckets + 5, 1}}})
	if viaJSON != all {
		t.Fatal("corrupt bucket was merged")
	}
}

func BenchmarkAtomicHistRecord(b *testing.B) {
	var h atomicHist
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(uint64(i) * 997)
	}
}
