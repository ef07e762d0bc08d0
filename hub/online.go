package hub

import (
	"sync"

	"github.com/meshcast/meshcast/internal/relay"
)

// Users online across the cluster (Config.OnUserOnline, OnUserOffline,
// Hub.Online): every connection with a user is present on the reserved
// channel onlineChannel, which the presence machinery replicates like any
// other, so a user is online from its first connection on any node to the
// end of its last one, node deaths included. Nodes track it only when a
// hook is set, and only those want the channel (so only they get its
// changes): every node of a cluster must set them for the view to be
// whole.

// onlineChannel holds every connection with a user; clients cannot see it.
const onlineChannel = ReservedPrefix + "sys:online"

// onlineHooks runs OnUserOnline and OnUserOffline on one goroutine, with
// no hub lock held. Changes only mark a user dirty; the goroutine then
// compares the user's presence now with what it last reported. So the
// pending work is bounded by the number of users, the hooks never see a
// user twice in a row in the same state, and they always end in the true
// state; a user who went offline and came back before the hook ran is not
// reported at all.
type onlineHooks struct {
	on, off func(user string)

	// mu guards pending; it is never held while taking another lock.
	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{} // capacity 1

	reported map[string]struct{} // users reported online; the goroutine's own
}

func (o *onlineHooks) enabled() bool { return o.on != nil || o.off != nil }

// dirty notes that user's online state may have changed. It never blocks.
func (o *onlineHooks) dirty(user string) {
	if !o.enabled() {
		return
	}
	o.mu.Lock()
	o.pending[user] = struct{}{}
	o.mu.Unlock()
	signal(o.wake)
}

// startOnline starts the hooks' goroutine if a hook is set. New calls it.
func (h *Hub) startOnline() {
	o := &h.online
	o.on, o.off = h.cfg.OnUserOnline, h.cfg.OnUserOffline
	if !o.enabled() {
		return
	}
	// This node must hear of every node's online entries: it wants the
	// channel as a presence channel, for good (nodes without hooks do not,
	// and get nothing of it). No wait: the hooks are told as entries come.
	h.relay.Subscribe(onlineChannel, true)
	o.pending = make(map[string]struct{})
	o.reported = make(map[string]struct{})
	o.wake = make(chan struct{}, 1)
	h.wg.Add(1)
	go h.onlineLoop()
}

func (h *Hub) onlineLoop() {
	defer h.wg.Done()
	o := &h.online
	for {
		select {
		case <-o.wake:
		case <-h.ctx.Done():
			return
		}
		o.mu.Lock()
		users := sortedKeys(o.pending)
		clear(o.pending)
		o.mu.Unlock()
		for _, u := range users {
			h.reportOnline(u)
		}
	}
}

// reportOnline runs the hook of user's change since it was last reported.
func (h *Hub) reportOnline(user string) {
	o := &h.online
	now := h.pres.present(onlineChannel, user)
	_, was := o.reported[user]
	switch {
	case now && !was:
		o.reported[user] = struct{}{}
		if o.on != nil {
			o.on(user)
		}
	case !now && was:
		delete(o.reported, user)
		if o.off != nil {
			o.off(user)
		}
	}
}

// onlineOpened makes a new connection with a user present on the online
// channel. The transport orders it before onlineClosed.
func (h *Hub) onlineOpened(s *session) {
	if !h.online.enabled() || s.client.User() == "" {
		return
	}
	e := relay.PresenceEntry{Ch: onlineChannel, Client: s.client.id, User: s.client.User()}
	h.pres.mu.Lock()
	h.emitLocked(h.pres.addLocked(0, e, nil), false)
	h.pres.mu.Unlock()
	h.relay.PresenceAdd(e)
}

func (h *Hub) onlineClosed(s *session) {
	if !h.online.enabled() || s.client.User() == "" {
		return
	}
	h.pres.mu.Lock()
	h.emitLocked(h.pres.removeLocked(0, onlineChannel, s.client.id, s.client.User(), nil), false)
	h.pres.mu.Unlock()
	h.relay.PresenceRemove(onlineChannel, s.client.id)
}

// Online reports whether user has a connection on any node of the
// cluster, as far as this node knows (a node that died takes its users
// with it once it is declared dead). It needs Config.OnUserOnline or
// OnUserOffline on every node; without them it is always false.
func (h *Hub) Online(user string) bool {
	return h.online.enabled() && h.pres.present(onlineChannel, user)
}
