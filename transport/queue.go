package transport

import "sync"

// connQueue is a FIFO of connections waiting for a worker or a writer.
// Each connection is in a queue at most once at a time (the read token and
// the writing flag guarantee it), so its length is bounded by the number of
// connections and push never blocks. The writers' queue also holds bursts
// (Server.Burst), taken before connections: a burst's connections were
// idle, so it is the latency of a fan-out, while a busy connection's queue
// only grows (and coalesces) while it waits.
type connQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*Conn
	head   int
	bursts []*burst // each burst once per writer that should take it
	closed bool
}

func (q *connQueue) init() { q.cond.L = &q.mu }

func (q *connQueue) push(c *Conn) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	q.cond.Signal()
}

// waiting reports whether connections wait on the queue.
func (q *connQueue) waiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head < len(q.items)
}

// pushBurst queues b for n writers and wakes them.
func (q *connQueue) pushBurst(b *burst, n int) {
	q.mu.Lock()
	for range n {
		q.bursts = append(q.bursts, b)
	}
	q.mu.Unlock()
	if n == 1 {
		q.cond.Signal()
	} else {
		q.cond.Broadcast()
	}
}

// popConns appends connections waiting on the queue to dst, without
// blocking, until it holds limit.
func (q *connQueue) popConns(dst []*Conn, limit int) []*Conn {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(dst) < limit && q.head < len(q.items) {
		dst = append(dst, q.items[q.head])
		q.items[q.head] = nil
		q.head++
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return dst
}

// pop blocks until a connection is queued or the queue is closed and empty.
func (q *connQueue) pop() (*Conn, bool) {
	c, _, ok := q.popAny()
	return c, ok
}

// popAny blocks until a burst or a connection is queued (a burst first) or
// the queue is closed and empty.
func (q *connQueue) popAny() (*Conn, *burst, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && len(q.bursts) == 0 && !q.closed {
		q.cond.Wait()
	}
	if n := len(q.bursts); n > 0 {
		b := q.bursts[n-1]
		q.bursts[n-1] = nil
		q.bursts = q.bursts[:n-1]
		return nil, b, true
	}
	if q.head == len(q.items) {
		return nil, nil, false
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
	return c, nil, true
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
