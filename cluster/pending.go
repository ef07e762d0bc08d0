package cluster

import "sync"

// pending is a table of requests this node sent to peers and waits answers
// for, by id: history fetches and presence queries. An answer that comes
// after its asker gave up (closed the id) finds nothing and is dropped.
type pending[T any] struct {
	mu      sync.Mutex
	next    uint64
	waiting map[uint64]T
}

// open registers the request that mk makes for a fresh id.
func (p *pending[T]) open(mk func(id uint64) T) (uint64, T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting == nil {
		p.waiting = make(map[uint64]T)
	}
	p.next++
	v := mk(p.next)
	p.waiting[p.next] = v
	return p.next, v
}

// close forgets id: its asker stopped waiting.
func (p *pending[T]) close(id uint64) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

// answer hands (a part of) an answer to id's request: f runs under the
// table's lock and says whether the answer is complete, which forgets id.
func (p *pending[T]) answer(id uint64, f func(T) (complete bool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.waiting[id]
	if ok && f(v) {
		delete(p.waiting, id)
	}
}
