package transport

import "sync"

// connQueue is a FIFO of connections waiting for a worker or a writer.
// Each connection is in a queue at most once at a time (the read token and
// the writing flag guarantee it), so its length is bounded by the number of
// connections and push never blocks.
type connQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*Conn
	head   int
	closed bool
}

func (q *connQueue) init() { q.cond.L = &q.mu }

func (q *connQueue) push(c *Conn) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop blocks until a connection is queued or the queue is closed and empty.
func (q *connQueue) pop() (*Conn, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.items) {
		return nil, false
	}
	c := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > len(q.items)/2 && q.head > 64:
		// Compact so a queue that never drains does not grow forever.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return c, true
}

// drain calls f with each connection popped until the queue is closed and
// empty.
func (q *connQueue) drain(f func(*Conn)) {
	for {
		c, ok := q.pop()
		if !ok {
			return
		}
		f(c)
	}
}

// close wakes every pop; they return false once the queue is empty.
func (q *connQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
