package hub

import (
	"context"
	"log/slog"

	"github.com/meshcast/meshcast/internal/relay"
)

// How the table changes: a local client's subscribe and unsubscribe
// (owner 0), and what the cluster hands over from peers. Each change
// queues its events to the local subscribers before the table's lock is
// released, so events reach every subscriber in the order of the changes.

// presenceOn reports whether a subscription of ch makes the client present.
func (h *Hub) presenceOn(ch string) bool {
	return !isReserved(ch) && h.namespace(ch).Presence
}

// presenceUser is who a connection is present as: its user, or its id
// when anonymous.
func (c *Client) presenceUser() string {
	if u := c.User(); u != "" {
		return u
	}
	return c.id
}

// presenceJoin makes s present on ch and tells the peers. Caller holds
// session.mu, which orders a client's joins and leaves.
func (h *Hub) presenceJoin(s *session, ch string, info []byte) {
	e := relay.PresenceEntry{Ch: ch, Client: s.client.id, User: s.client.presenceUser(), Info: info}
	h.pres.mu.Lock()
	h.emitLocked(h.pres.addLocked(0, e, nil), false)
	h.pres.mu.Unlock()
	h.relay.PresenceAdd(e)
}

// presenceLeave ends the presence of s on ch. Caller holds session.mu.
func (h *Hub) presenceLeave(s *session, ch string) {
	h.pres.mu.Lock()
	h.emitLocked(h.pres.removeLocked(0, ch, s.client.id, s.client.presenceUser(), nil), false)
	h.pres.mu.Unlock()
	h.relay.PresenceRemove(ch, s.client.id)
}

// emitLocked sends each event to the local subscribers of its channel,
// when its namespace has join_leave and the change is not quiet (no
// subscriber was acked yet: relay.PresenceChannel), and hands the events
// of the online channel to the hooks' dispatcher. Caller holds pres.mu.
func (h *Hub) emitLocked(evs []presenceEvent, quiet bool) {
	for _, ev := range evs {
		if ev.ch == onlineChannel {
			h.online.dirty(ev.user)
			continue
		}
		if quiet || isReserved(ev.ch) || !h.namespace(ev.ch).JoinLeave {
			continue
		}
		subs, _ := h.reg.snapshot(ev.ch)
		if len(subs) == 0 {
			continue
		}
		frame := joinLeaveFrame(ev)
		for _, s := range subs {
			s.send(frame)
		}
		h.metrics.presenceEvents.Add(uint64(len(subs)))
	}
}

// remoteEntry checks an entry a peer sent: info that is not a JSON value
// in UTF-8 (json.Valid lets invalid bytes in strings pass) within the
// limit is dropped (peers are trusted, but a client frame is
// built from it).
func (h *Hub) remoteEntry(e relay.PresenceEntry) relay.PresenceEntry {
	if e.Info != nil && (len(e.Info) > relay.MaxPresenceInfo || !validJSONText(e.Info)) {
		h.log.Warn("ignored a peer's malformed presence info", slog.String("channel", e.Ch), slog.String("client", e.Client))
		e.Info = nil
	}
	return e
}

// The relay.PresenceReceiver methods, on the hub's receiver.

func (r receiver) PresenceSync(o relay.Owner, full bool, chans []relay.PresenceChannel) {
	h := r.h
	for _, pc := range chans {
		for i := range pc.Entries {
			pc.Entries[i] = h.remoteEntry(pc.Entries[i])
		}
	}
	h.pres.mu.Lock()
	defer h.pres.mu.Unlock()
	synced := make(map[string]struct{}, len(chans))
	for _, pc := range chans {
		synced[pc.Ch] = struct{}{}
		// The set first, then the earlier stays' entries of the channel
		// go: a user in both never seems to leave.
		evs := h.pres.syncChannelLocked(o.Seq, pc.Ch, pc.Entries, nil)
		h.pres.ownedBy(o)
		h.emitLocked(h.pres.supersedeLocked(o.Node, o.Seq, pc.Ch, evs), pc.Quiet)
	}
	if !full {
		return
	}
	// Everything of o on other channels goes: it does not know this node
	// wants them (yet), and its set of them will come (and supersede the
	// earlier stays' entries of them, which are dropped anyway once that
	// stay's grace is over).
	h.emitLocked(h.pres.removeOwnerLocked(o.Seq, func(ch, _, _ string) bool {
		_, ok := synced[ch]
		return !ok
	}, nil), false)
}

func (r receiver) PresenceChange(o relay.Owner, e relay.PresenceEntry, present, quiet bool) {
	h := r.h
	h.pres.mu.Lock()
	defer h.pres.mu.Unlock()
	if present {
		h.emitLocked(h.pres.addLocked(o.Seq, h.remoteEntry(e), nil), quiet)
		h.pres.ownedBy(o)
	} else {
		h.emitLocked(h.pres.removeLocked(o.Seq, e.Ch, e.Client, e.User, nil), quiet)
	}
}

func (r receiver) PresenceForget(ch string) {
	h := r.h
	h.pres.mu.Lock()
	defer h.pres.mu.Unlock()
	h.emitLocked(h.pres.forgetLocked(ch, nil), true) // no subscriber of ch is left
}

func (r receiver) PresenceDrop(o relay.Owner) {
	h := r.h
	h.pres.mu.Lock()
	defer h.pres.mu.Unlock()
	evs := h.pres.removeOwnerLocked(o.Seq, func(string, string, string) bool { return true }, nil)
	if len(evs) > 0 {
		h.log.Info("peer's presence dropped", slog.String("peer", o.Node), slog.Int("leaves", len(evs)))
	}
	h.emitLocked(evs, false)
}

// A hub alone has no peers to tell, and its view is always whole.
func (localRelay) PresenceAdd(relay.PresenceEntry)  {}
func (localRelay) PresenceRemove(ch, client string) {}
func (localRelay) PresenceView(string) bool         { return true }
func (localRelay) PresenceFetch(context.Context, string) ([]relay.PresenceEntry, error) {
	return nil, nil
}
