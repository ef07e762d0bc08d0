package hub

import (
	"slices"
	"strings"
	"sync"

	"github.com/meshcast/meshcast/internal/relay"
)

// presenceTable is the cluster-wide presence this node knows: the entries
// of its own clients (owner 0) and those the peers replicated here on the
// channels it has subscribers of, under the peer's relay.Owner seq
// (docs/presence.md). Per channel it keeps each
// user's connections wherever they are, so that a user's first connection
// anywhere is one join and the last one gone is one leave, however many
// tabs and nodes are involved.
//
// mu is taken after session.mu and before registry.mu (events are queued
// to subscribers under it, so that every subscriber sees a channel's
// events in the order the table changed). It is never held while calling
// the relay or a hook.
type presenceTable struct {
	mu    sync.Mutex
	chans map[string]*presenceChan
	// owners counts, per remote owner, its entries on each channel: what
	// a sync or a drop of that owner has to look through.
	owners map[uint64]map[string]int
	nodes  map[uint64]string // the node of each remote owner in owners
	// entries counts every connection present on a channel, local and
	// remote, and local the local ones.
	entries, local int
}

type presenceChan struct {
	users   map[string]*presenceUser
	clients int
}

// presenceUser is one user's connections on a channel, cluster-wide. Most
// users have one or a few (tabs), so a slice beats a map.
type presenceUser struct {
	conns []presenceConn
}

type presenceConn struct {
	owner  uint64
	client string
	info   []byte
}

// presenceEvent is a user's first connection on a channel (join) or the
// end of its last one (leave).
type presenceEvent struct {
	ch, user string
	join     bool
	info     []byte // of the joining connection
}

func newPresenceTable() presenceTable {
	return presenceTable{chans: make(map[string]*presenceChan), owners: make(map[uint64]map[string]int),
		nodes: make(map[uint64]string)}
}

// addLocked adds the entry of owner and reports a join if it is the user's
// first connection on the channel. An entry already there (same owner and
// client) only has its info replaced. Caller holds mu.
func (t *presenceTable) addLocked(owner uint64, e relay.PresenceEntry, evs []presenceEvent) []presenceEvent {
	pc := t.chans[e.Ch]
	if pc == nil {
		pc = &presenceChan{users: make(map[string]*presenceUser)}
		t.chans[e.Ch] = pc
	}
	pu := pc.users[e.User]
	if pu == nil {
		pu = &presenceUser{}
		pc.users[e.User] = pu
	}
	for i := range pu.conns {
		if c := &pu.conns[i]; c.owner == owner && c.client == e.Client {
			c.info = e.Info
			return evs
		}
	}
	pu.conns = append(pu.conns, presenceConn{owner: owner, client: e.Client, info: e.Info})
	pc.clients++
	t.count(owner, 1)
	t.countOwnerLocked(owner, e.Ch, 1)
	if len(pu.conns) == 1 {
		evs = append(evs, presenceEvent{ch: e.Ch, user: e.User, join: true, info: e.Info})
	}
	return evs
}

// removeLocked removes the entry of owner and client on ch, which is
// user's (when user is wrong, every user of ch is looked through), and
// reports a leave if it was the user's last connection there.
func (t *presenceTable) removeLocked(owner uint64, ch, client, user string, evs []presenceEvent) []presenceEvent {
	pc := t.chans[ch]
	if pc == nil {
		return evs
	}
	if pu := pc.users[user]; pu != nil && pu.index(owner, client) >= 0 {
		return t.removeAtLocked(pc, ch, user, pu, pu.index(owner, client), evs)
	}
	for u, pu := range pc.users {
		if i := pu.index(owner, client); i >= 0 {
			return t.removeAtLocked(pc, ch, u, pu, i, evs)
		}
	}
	return evs
}

func (pu *presenceUser) index(owner uint64, client string) int {
	for i, c := range pu.conns {
		if c.owner == owner && c.client == client {
			return i
		}
	}
	return -1
}

// removeAtLocked removes pu.conns[i] of user on ch.
func (t *presenceTable) removeAtLocked(pc *presenceChan, ch, user string, pu *presenceUser, i int, evs []presenceEvent) []presenceEvent {
	owner := pu.conns[i].owner
	pu.conns = slices.Delete(pu.conns, i, i+1)
	pc.clients--
	t.count(owner, -1)
	t.countOwnerLocked(owner, ch, -1)
	if len(pu.conns) > 0 {
		return evs
	}
	delete(pc.users, user)
	if len(pc.users) == 0 {
		delete(t.chans, ch)
	}
	return append(evs, presenceEvent{ch: ch, user: user})
}

func (t *presenceTable) count(owner uint64, delta int) {
	t.entries += delta
	if owner == 0 {
		t.local += delta
	}
}

// countOwnerLocked keeps owners in step for remote owners.
func (t *presenceTable) countOwnerLocked(owner uint64, ch string, delta int) {
	if owner == 0 {
		return
	}
	m := t.owners[owner]
	if m == nil {
		m = make(map[string]int)
		t.owners[owner] = m
	}
	if m[ch] += delta; m[ch] <= 0 {
		delete(m, ch)
		if len(m) == 0 {
			delete(t.owners, owner)
			delete(t.nodes, owner)
		}
	}
}

// supersedeLocked removes the entries on ch of node's stays before seq.
func (t *presenceTable) supersedeLocked(node string, seq uint64, ch string, evs []presenceEvent) []presenceEvent {
	var stale []uint64
	for owner, n := range t.nodes {
		if n == node && owner < seq {
			stale = append(stale, owner)
		}
	}
	slices.Sort(stale)
	for _, owner := range stale {
		evs = t.removeOwnerLocked(owner, func(c, _, _ string) bool { return c == ch }, evs)
	}
	return evs
}

// syncChannelLocked makes entries the whole set of owner on ch. Adds come
// first, so a user who only changed connections on that owner sees no
// leave and join.
func (t *presenceTable) syncChannelLocked(owner uint64, ch string, entries []relay.PresenceEntry, evs []presenceEvent) []presenceEvent {
	type key struct{ client, user string }
	keep := make(map[key]struct{}, len(entries))
	for _, e := range entries {
		keep[key{e.Client, e.User}] = struct{}{}
		evs = t.addLocked(owner, e, evs)
	}
	return t.removeOwnerLocked(owner, func(c, client, user string) bool {
		if c != ch {
			return false
		}
		_, ok := keep[key{client, user}]
		return !ok
	}, evs)
}

// forgetLocked removes every remote entry of ch.
func (t *presenceTable) forgetLocked(ch string, evs []presenceEvent) []presenceEvent {
	pc := t.chans[ch]
	if pc == nil {
		return evs
	}
	for _, user := range sortedKeys(pc.users) {
		pu := pc.users[user]
		for i := len(pu.conns) - 1; i >= 0; i-- {
			if pu.conns[i].owner != 0 {
				evs = t.removeAtLocked(pc, ch, user, pu, i, evs)
			}
		}
	}
	return evs
}

// removeOwnerLocked removes the entries of owner that gone says are gone.
func (t *presenceTable) removeOwnerLocked(owner uint64, gone func(ch, client, user string) bool, evs []presenceEvent) []presenceEvent {
	for _, ch := range sortedKeys(t.owners[owner]) {
		pc := t.chans[ch]
		if pc == nil {
			continue
		}
		for _, user := range sortedKeys(pc.users) {
			pu := pc.users[user]
			for i := len(pu.conns) - 1; i >= 0; i-- {
				if c := pu.conns[i]; c.owner == owner && gone(ch, c.client, user) {
					evs = t.removeAtLocked(pc, ch, user, pu, i, evs)
				}
			}
		}
	}
	return evs
}

// sortedKeys returns m's keys in order, so a sync or a drop emits its
// events in an order tests (and people reading logs) can follow.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// info is the user's info on a channel: that of its connection with the
// lowest client id that has one, so every node shows the same.
func (pu *presenceUser) info() []byte {
	var best *presenceConn
	for i := range pu.conns {
		c := &pu.conns[i]
		if c.info != nil && (best == nil || strings.Compare(c.client, best.client) < 0) {
			best = c
		}
	}
	if best == nil {
		return nil
	}
	return best.info
}

// present reports whether user has a connection on ch.
func (t *presenceTable) present(ch, user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc := t.chans[ch]
	return pc != nil && pc.users[user] != nil
}

// ownedBy records whose entries owner's are, while it has some.
func (t *presenceTable) ownedBy(o relay.Owner) {
	if _, ok := t.owners[o.Seq]; ok {
		t.nodes[o.Seq] = o.Node
	}
}
