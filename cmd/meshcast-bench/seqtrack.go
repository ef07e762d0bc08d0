package main

// seqResult classifies one delivery seen by a subscriber.
type seqResult uint8

const (
	seqInOrder seqResult = iota // the next expected sequence number
	seqGap                      // ahead of the next expected: the skipped ones are counted lost
	seqLate                     // fills an earlier gap: reordered, and no longer lost
	seqDup                      // already seen
	seqUnknown                  // from a publisher index out of range
)

// maxGapsPerPub bounds the memory a badly lossy run can take: when more
// gaps are open, the oldest is forgotten and stays counted as lost (a late
// arrival for it is then reported as a duplicate).
const maxGapsPerPub = 32

// span is a half-open range [lo, hi) of missing sequence numbers.
type span struct{ lo, hi uint64 }

// seqTracker follows, for one subscriber, the sequence numbers of each
// publisher. Publishers number their messages 0, 1, 2, ... and meshcast
// promises per-publisher FIFO with no loss and no duplicates, so any
// deviation is a finding. Not safe for concurrent use.
type seqTracker struct {
	next []uint64 // per publisher: next expected sequence number
	gaps [][]span // per publisher: still-missing ranges, oldest first
}

func newSeqTracker(pubs int) seqTracker {
	return seqTracker{next: make([]uint64, pubs), gaps: make([][]span, pubs)}
}

// observe records message s of publisher p. missed is the number of
// messages newly counted as lost (seqGap only).
func (t *seqTracker) observe(p int, s uint64) (res seqResult, missed uint64) {
	if p < 0 || p >= len(t.next) {
		return seqUnknown, 0
	}
	next := t.next[p]
	switch {
	case s == next:
		t.next[p] = s + 1
		return seqInOrder, 0
	case s > next:
		t.addGap(p, span{next, s})
		t.next[p] = s + 1
		return seqGap, s - next
	}
	if t.fill(p, s) {
		return seqLate, 0
	}
	return seqDup, 0
}

// tail declares that publisher p sent messages up to end (exclusive); the
// ones not yet seen are counted lost and returned. Called after the drain
// wait at the end of a step.
func (t *seqTracker) tail(p int, end uint64) uint64 {
	if p < 0 || p >= len(t.next) || t.next[p] >= end {
		return 0
	}
	missed := end - t.next[p]
	t.addGap(p, span{t.next[p], end})
	t.next[p] = end
	return missed
}

func (t *seqTracker) addGap(p int, g span) {
	gs := append(t.gaps[p], g)
	if len(gs) > maxGapsPerPub {
		gs = append(gs[:0], gs[1:]...)
	}
	t.gaps[p] = gs
}

// fill removes s from the open gaps of p; false if s was not missing.
func (t *seqTracker) fill(p int, s uint64) bool {
	gs := t.gaps[p]
	for i := len(gs) - 1; i >= 0; i-- {
		g := gs[i]
		if s < g.lo || s >= g.hi {
			continue
		}
		switch {
		case g.hi-g.lo == 1:
			gs = append(gs[:i], gs[i+1:]...)
		case s == g.lo:
			gs[i].lo++
		case s == g.hi-1:
			gs[i].hi--
		default:
			gs[i].hi = s
			gs = append(gs, span{})
			copy(gs[i+2:], gs[i+1:])
			gs[i+1] = span{s + 1, g.hi}
			if len(gs) > maxGapsPerPub {
				gs = append(gs[:0], gs[1:]...)
			}
		}
		t.gaps[p] = gs
		return true
	}
	return false
}
