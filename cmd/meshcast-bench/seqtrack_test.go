package main

import "testing"

func TestSeqTracker(t *testing.T) {
	type obs struct {
		p int
		s uint64
	}
	cases := []struct {
		name                   string
		in                     []obs
		tail                   []uint64 // per publisher end, applied after in
		recv, lost, dup, reord int64
		unknown                int64
	}{
		{"in order", []obs{{0, 0}, {0, 1}, {1, 0}, {0, 2}, {1, 1}}, []uint64{3, 2}, 5, 0, 0, 0, 0},
		{"gap", []obs{{0, 0}, {0, 3}, {0, 4}}, []uint64{5}, 3, 2, 0, 0, 0},
		{"gap filled late", []obs{{0, 0}, {0, 3}, {0, 1}, {0, 2}}, []uint64{4}, 4, 0, 0, 2, 0},
		{"late in middle of gap", []obs{{0, 0}, {0, 9}, {0, 5}, {0, 5}}, []uint64{10}, 3, 7, 1, 1, 0},
		{"duplicate", []obs{{0, 0}, {0, 1}, {0, 1}, {0, 0}}, []uint64{2}, 2, 0, 2, 0, 0},
		{"missing tail", []obs{{0, 0}, {1, 0}}, []uint64{5, 1}, 2, 4, 0, 0, 0},
		{"nothing received", nil, []uint64{3, 3}, 0, 6, 0, 0, 0},
		{"late after tail", []obs{{0, 0}}, []uint64{3}, 1, 2, 0, 0, 0},
		{"unknown publisher", []obs{{7, 0}, {-1, 0}}, []uint64{0}, 0, 0, 0, 0, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newSeqTracker(len(tc.tail))
			var c counters
			var unknown int64
			for _, o := range tc.in {
				res, missed := tr.observe(o.p, o.s)
				switch res {
				case seqInOrder:
					c.received++
				case seqGap:
					c.received++
					c.lost += int64(missed)
				case seqLate:
					c.received++
					c.reordered++
					c.lost--
				case seqDup:
					c.dups++
				case seqUnknown:
					unknown++
				}
			}
			for p, end := range tc.tail {
				c.lost += int64(tr.tail(p, end))
			}
			if c.received != tc.recv || c.lost != tc.lost || c.dups != tc.dup || c.reordered != tc.reord || unknown != tc.unknown {
				t.Fatalf("got %+v unknown %d", c, unknown)
			}
		})
	}
}

func TestSeqTrackerLateAfterTailIsReordered(t *testing.T) {
	tr := newSeqTracker(1)
	tr.observe(0, 0)
	if n := tr.tail(0, 3); n != 2 {
		t.Fatalf("tail %d", n)
	}
	if res, _ := tr.observe(0, 2); res != seqLate {
		t.Fatalf("late arrival after the tail count: %v", res)
	}
	if res, _ := tr.observe(0, 2); res != seqDup {
		t.Fatalf("second copy: %v", res)
	}
	if res, _ := tr.observe(0, 3); res != seqInOrder {
		t.Fatalf("next step's first: %v", res)
	}
}

func TestSeqTrackerGapsBounded(t *testing.T) {
	tr := newSeqTracker(1)
	for s := uint64(0); s < 10*maxGapsPerPub; s += 2 {
		tr.observe(0, s)
	}
	if len(tr.gaps[0]) > maxGapsPerPub {
		t.Fatalf("%d gaps kept", len(tr.gaps[0]))
	}
	// The oldest gaps were forgotten: a late copy of one is a duplicate.
	if res, _ := tr.observe(0, 1); res != seqDup {
		t.Fatalf("forgotten gap: %v", res)
	}
	if res, _ := tr.observe(0, 10*maxGapsPerPub-3); res != seqLate {
		t.Fatalf("recent gap: %v", res)
	}
}
