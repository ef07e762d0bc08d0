package cluster

import "sync"

// frameQueue is a link's bounded queue of encoded frames. Producers never
// block; the single writer swaps the whole backlog out in one lock.
type frameQueue struct {
	max  int
	wake chan struct{} // capacity 1: "the queue became non-empty"

	mu     sync.Mutex
	frames [][]byte
	closed bool
}

func newFrameQueue(max int) *frameQueue {
	return &frameQueue{max: max, wake: make(chan struct{}, 1)}
}

// push appends f. It returns false when the queue is full or closed.
func (q *frameQueue) push(f []byte) bool {
	q.mu.Lock()
	if q.closed || len(q.frames) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, f)
	first := len(q.frames) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// pushAll appends every frame or none.
func (q *frameQueue) pushAll(fs [][]byte) bool {
	q.mu.Lock()
	if q.closed || len(q.frames)+len(fs) > q.max {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, fs...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// swap returns the backlog and keeps spare (emptied) as the new backing array.
func (q *frameQueue) swap(spare [][]byte) [][]byte {
	q.mu.Lock()
	out := q.frames
	if len(out) == 0 { // keep spare with the writer: never share an array
		q.mu.Unlock()
		return nil
	}
	q.frames = spare[:0]
	q.mu.Unlock()
	return out
}

func (q *frameQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames)
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
