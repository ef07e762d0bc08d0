package hub

import "container/heap"

// expiryHeap is the schedule of token expiries: a min-heap of unix seconds
// that can also remove any second. A second is in it exactly while some
// session expires then, so it never holds more entries than there are
// sessions, however many connect and go with long-lived tokens. Guarded
// by hubSecurity.mu.
type expiryHeap struct {
	secs []int64
	at   map[int64]int // second -> its index in secs
}

// add schedules sec unless it is scheduled already.
func (q *expiryHeap) add(sec int64) {
	if q.at == nil {
		q.at = make(map[int64]int)
	}
	if _, ok := q.at[sec]; !ok {
		heap.Push(q, sec)
	}
}

// remove unschedules sec, if it is scheduled.
func (q *expiryHeap) remove(sec int64) {
	if i, ok := q.at[sec]; ok {
		heap.Remove(q, i)
	}
}

// due pops and returns the soonest second if it is at or before now.
func (q *expiryHeap) due(now int64) (int64, bool) {
	if len(q.secs) == 0 || q.secs[0] > now {
		return 0, false
	}
	return heap.Pop(q).(int64), true
}

// container/heap's interface; use add, remove and due instead.
func (q *expiryHeap) Len() int           { return len(q.secs) }
func (q *expiryHeap) Less(i, j int) bool { return q.secs[i] < q.secs[j] }
func (q *expiryHeap) Swap(i, j int) {
	q.secs[i], q.secs[j] = q.secs[j], q.secs[i]
	q.at[q.secs[i]], q.at[q.secs[j]] = i, j
}
func (q *expiryHeap) Push(x any) {
	sec := x.(int64)
	q.at[sec] = len(q.secs)
	q.secs = append(q.secs, sec)
}
func (q *expiryHeap) Pop() any {
	last := len(q.secs) - 1
	sec := q.secs[last]
	q.secs = q.secs[:last]
	delete(q.at, sec)
	return sec
}
