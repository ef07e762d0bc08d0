package cluster

import "sync"

// frameQueue is a link's bounded queue of encoded frames. Producers never
// block; the single writer swaps the whole backlog out in one lock.
//
// A publish that does not fit is dropped, and its channel remembered: the
// writer sends a gap frame naming those channels right after the frames
// that were queued before the drop, so the peer tells its subscribers at
// the very point of the loss.
type frameQueue struct {
	max  int
	wake chan struct{} // capacity 1: "the queue became non-empty" (or finishing)

	mu        sync.Mutex
	frames    []qframe
	stamped   uint64              // stamped publishes queued so far: the acceptor acks this count
	dropped   map[string]struct{} // channels of publishes dropped since the last gap frame
	dropAll   bool                // more than maxGapChannels: the gap covers everything
	closed    bool
	finishing bool // no more frames: the writer sends a bye once the queue is empty
}

// qframe is a queued frame: head, then tail written right after it (a
// publish's data, shared with the hub's client frame and every other
// link, never copied); tail is nil for control frames.
type qframe struct {
	head, tail []byte
	stamped    bool // a publish on a channel with history: the acceptor acks it when stored
}

// maxGapChannels bounds the channels one gap frame names.
const maxGapChannels = 256

func newFrameQueue(max int) *frameQueue {
	return &frameQueue{max: max, wake: make(chan struct{}, 1)}
}

// pushPublish appends a publish frame of channel ch, or drops it and
// remembers ch. It returns false on a drop, and for a stamped frame its
// number among the stamped frames of this link.
func (q *frameQueue) pushPublish(f qframe, ch string) (stampedSeq uint64, ok bool) {
	q.mu.Lock()
	if q.closed || q.finishing {
		q.mu.Unlock()
		return 0, false
	}
	if len(q.frames) >= q.max {
		q.noteDropLocked(ch)
		q.mu.Unlock()
		return 0, false
	}
	q.frames = append(q.frames, f)
	if f.stamped {
		q.stamped++
		stampedSeq = q.stamped
	}
	first := len(q.frames) == 1
	q.mu.Unlock()
	if first {
		signal(q.wake)
	}
	return stampedSeq, true
}

func (q *frameQueue) noteDropLocked(ch string) {
	if q.dropAll {
		return
	}
	if q.dropped == nil {
		q.dropped = make(map[string]struct{})
	}
	if _, ok := q.dropped[ch]; !ok && len(q.dropped) >= maxGapChannels {
		q.dropAll, q.dropped = true, nil
		return
	}
	q.dropped[ch] = struct{}{}
}

// pushAll appends every (control) frame or none.
func (q *frameQueue) pushAll(fs [][]byte) bool {
	q.mu.Lock()
	if q.closed || q.finishing || len(q.frames)+len(fs) > q.max {
		q.mu.Unlock()
		return false
	}
	for _, f := range fs {
		q.frames = append(q.frames, qframe{head: f})
	}
	q.mu.Unlock()
	signal(q.wake)
	return true
}

// swap returns the backlog and keeps spare (emptied) as the new backing
// array, with the drops that happened while the backlog was queued.
func (q *frameQueue) swap(spare []qframe) (out []qframe, drops gapMsg, finishing bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out = q.frames
	if q.dropAll || len(q.dropped) > 0 {
		drops.All = q.dropAll
		for ch := range q.dropped {
			drops.Chs = append(drops.Chs, ch)
		}
		q.dropped, q.dropAll = nil, false
	}
	if len(out) > 0 { // keep spare with the writer when empty: never share an array
		q.frames = spare[:0]
	}
	return out, drops, q.finishing
}

func (q *frameQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames)
}

// finish refuses further frames; the writer drains the rest, sends a bye
// and closes the link.
func (q *frameQueue) finish() {
	q.mu.Lock()
	q.finishing = true
	q.mu.Unlock()
	signal(q.wake)
}

// close refuses further frames and returns how many were still queued.
func (q *frameQueue) close() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	n := len(q.frames)
	q.frames = nil
	return n
}
