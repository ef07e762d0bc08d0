package hub

import (
	"slices"
	"sync"
	"sync/atomic"
)

// channel holds the local subscribers of one channel name.
//
// subs is copy-on-write only when it has to be: a fan-out takes the
// current slice under the registry's read lock and marks it shared; the
// next change (under the write lock) copies it first. So a publish never
// holds a lock while it sends, and a burst of subscribes with no publish
// in between costs O(1) each.
type channel struct {
	name   string
	subs   []*session
	pos    map[*session]int // index in subs; nil while the channel is small
	shared atomic.Bool
	// locals are in-process subscriptions (Hub.Subscribe): few, so the
	// slice is replaced on every change and fan-outs read it as is.
	locals []*Subscription
}

// smallChannel is the size up to which a channel finds a subscriber by
// scanning subs instead of keeping pos: most channels are small, and a
// map per channel would be most of an idle connection's memory.
const smallChannel = 16

// index returns the position of s in subs, or -1.
func (c *channel) index(s *session) int {
	if c.pos != nil {
		if i, ok := c.pos[s]; ok {
			return i
		}
		return -1
	}
	for i, x := range c.subs {
		if x == s {
			return i
		}
	}
	return -1
}

// setIndex records that s is at subs[i], building pos once the channel
// outgrows a scan.
func (c *channel) setIndex(s *session, i int) {
	if c.pos == nil && len(c.subs) > smallChannel {
		c.pos = make(map[*session]int, len(c.subs))
		for j, x := range c.subs {
			c.pos[x] = j
		}
	}
	if c.pos != nil {
		c.pos[s] = i
	}
}

// registry maps channel names to their local subscribers. Every change to
// membership happens under mu's write lock; fan-outs take the read lock
// only to fetch a snapshot. The cluster is told outside the lock (it
// counts subscribers itself), so nothing is encoded or closed under it.
type registry struct {
	mu       sync.RWMutex
	channels map[string]*channel
}

func newRegistry() *registry {
	return &registry{channels: make(map[string]*channel)}
}

// channelLocked returns name's channel, creating it. Caller holds mu.
func (r *registry) channelLocked(name string) *channel {
	c := r.channels[name]
	if c == nil {
		c = &channel{name: name}
		r.channels[name] = c
	}
	return c
}

// add subscribes s to name; the session knows it was not subscribed yet.
func (r *registry) add(name string, s *session) *channel {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.channelLocked(name)
	c.ownSubs()
	c.subs = append(c.subs, s)
	c.setIndex(s, len(c.subs)-1)
	return c
}

// addLocal adds an in-process subscription to name.
func (r *registry) addLocal(name string, sub *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.channelLocked(name)
	c.locals = append(c.locals[:len(c.locals):len(c.locals)], sub)
}

// removeLocal removes an in-process subscription from name.
func (r *registry) removeLocal(name string, sub *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.channels[name]
	if c == nil {
		return
	}
	if i := slices.Index(c.locals, sub); i >= 0 {
		c.locals = slices.Delete(slices.Clone(c.locals), i, i+1)
	}
	r.dropIfEmpty(c)
}

// dropIfEmpty forgets a channel with no subscriber left. Caller holds mu.
func (r *registry) dropIfEmpty(c *channel) {
	if len(c.subs) == 0 && len(c.locals) == 0 && r.channels[c.name] == c {
		delete(r.channels, c.name)
	}
}

// remove unsubscribes s from c; the channel goes when its last subscriber does.
func (r *registry) remove(c *channel, s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := c.index(s)
	if i < 0 {
		return
	}
	c.ownSubs()
	last := len(c.subs) - 1
	moved := c.subs[last]
	c.subs[i] = moved
	c.setIndex(moved, i)
	c.subs[last] = nil
	c.subs = c.subs[:last]
	if c.pos != nil {
		delete(c.pos, s)
	}
	r.dropIfEmpty(c)
}

// ownSubs copies subs if a fan-out may still be reading it. Caller holds
// the registry's write lock.
func (c *channel) ownSubs() {
	if c.shared.Load() {
		c.subs = append(make([]*session, 0, len(c.subs)+1), c.subs...)
		c.shared.Store(false)
	}
}

// snapshot returns the current subscribers of name; the slices must not
// be modified.
func (r *registry) snapshot(name string) ([]*session, []*Subscription) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.channels[name]
	if c == nil {
		return nil, nil
	}
	c.shared.Store(true)
	return c.subs, c.locals
}

func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.channels)
}
