package cluster

import (
	"errors"
	"hash/fnv"
	"slices"
	"sync"
	"time"
)

// ErrNotStored: a publish on a channel with history did not reach enough
// peers to survive a node's death (links down, peers gone, or no answer
// within InterestTimeout).
var ErrNotStored = errors.New("cluster: publish not stored by enough peers")

// durable is one stamped publish waiting until enough peers stored it.
type durable struct {
	mu          sync.Mutex
	want        int // peer copies wanted: min(Replicas-1, live peers) when published
	acks        int // peers that stored it
	outstanding int // peers it was sent to that have not answered
	done        bool
	cb          func(error)
	deadline    time.Time
}

// ack: one peer stored it.
func (d *durable) ack() {
	d.mu.Lock()
	d.outstanding--
	d.acks++
	ok := !d.done && d.acks >= d.want
	d.done = d.done || ok
	d.mu.Unlock()
	if ok {
		d.cb(nil)
	}
}

// fail: one peer will not store it (its link went down). It is settled by
// expire: if the peer's process turned out to be gone (its redial is
// refused, or memberlist declares it dead), fewer copies are wanted.
func (d *durable) fail() {
	d.mu.Lock()
	d.outstanding--
	d.mu.Unlock()
}

// expire settles d at now, with live the peers that could still hold a
// copy: stored if it has as many copies as they allow, failed if it is
// late or nothing is left to wait for and they are still too few. It
// reports whether d is settled (and can be forgotten).
func (d *durable) expire(now time.Time, live int) bool {
	d.mu.Lock()
	var result error
	settle := false
	switch {
	case d.done:
	case d.acks >= min(d.want, live):
		settle = true
	case now.After(d.deadline):
		settle, result = true, ErrNotStored
	}
	d.done = d.done || settle
	settled := d.done
	d.mu.Unlock()
	if settle {
		d.cb(result)
	}
	return settled
}

// storeWaiter is a durable waiting for one link's stored count.
type storeWaiter struct {
	seq uint64
	d   *durable
}

// waitStored registers d for the seq-th stamped frame of oc; if the peer
// acked it already (the ack can beat us), d is acked at once.
func (oc *outConn) waitStored(seq uint64, d *durable) {
	oc.wmu.Lock()
	if oc.storedUpTo >= seq {
		oc.wmu.Unlock()
		d.ack()
		return
	}
	if oc.wclosed {
		oc.wmu.Unlock()
		d.fail()
		return
	}
	oc.waiters = append(oc.waiters, storeWaiter{seq, d})
	oc.wmu.Unlock()
}

// stored records the peer's ack of stamped frames up to seq.
func (oc *outConn) stored(seq uint64) {
	oc.wmu.Lock()
	if seq <= oc.storedUpTo {
		oc.wmu.Unlock()
		return
	}
	oc.storedUpTo = seq
	n := 0
	for n < len(oc.waiters) && oc.waiters[n].seq <= seq {
		n++
	}
	done := slices.Clone(oc.waiters[:n])
	oc.waiters = slices.Delete(oc.waiters, 0, n)
	oc.wmu.Unlock()
	for _, w := range done {
		w.d.ack()
	}
}

// failWaiters fails every waiter when the link ends: what was queued on
// it may never be stored.
func (oc *outConn) failWaiters() {
	oc.wmu.Lock()
	oc.wclosed = true
	ws := oc.waiters
	oc.waiters = nil
	oc.wmu.Unlock()
	for _, w := range ws {
		w.d.fail()
	}
}

// durables tracks the durables still waiting, to time them out.
type durables struct {
	mu   sync.Mutex
	list []*durable
}

func (ds *durables) add(d *durable) {
	ds.mu.Lock()
	ds.list = append(ds.list, d)
	ds.mu.Unlock()
}

// expire settles the durables that can be (durable.expire) and forgets
// them.
func (ds *durables) expire(now time.Time, live int) {
	ds.mu.Lock()
	list := ds.list
	ds.list = nil
	ds.mu.Unlock()
	var keep []*durable
	for _, d := range list {
		if !d.expire(now, live) {
			keep = append(keep, d)
		}
	}
	ds.mu.Lock()
	ds.list = append(keep, ds.list...)
	ds.mu.Unlock()
}

// storeTargets returns the peers a stamped publish of ch goes to: those
// interested in ch, plus backups when fewer of them than need have a link
// up. Backups are the live peers with a link up ranked by a rendezvous
// hash of (ch, peer): every node picks the same ones for a channel.
func (c *Cluster) storeTargets(ch string, interested []*peer, need int) []*peer {
	up := 0
	for _, p := range interested {
		if p.out.Load() != nil {
			up++
		}
	}
	if up >= need {
		return interested
	}
	var spare []*peer
	for _, p := range c.peerList() {
		if p.out.Load() != nil && !slices.Contains(interested, p) {
			spare = append(spare, p)
		}
	}
	slices.SortFunc(spare, func(a, b *peer) int { return cmpU64(rendezvous(ch, b.name), rendezvous(ch, a.name)) })
	out := slices.Clone(interested)
	return append(out, spare[:min(len(spare), need-up)]...)
}

func rendezvous(ch, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(ch))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
