package hub

import (
	"sync"
	"time"
)

// hubSecurity is the hub-wide state of auth and limits: connection slots,
// the index of sessions by user (for Disconnect) and the schedule of token
// expiries. Sessions without a user or a token cost it nothing.
type hubSecurity struct {
	conns *connLimiter

	// mu guards users, due and times; it is never held while sending.
	mu    sync.Mutex
	users map[string]map[*session]struct{}
	due   map[int64]map[*session]struct{} // token expiry (unix second) -> sessions
	times expiryHeap                      // the keys of due, soonest first
	// refreshing holds the sessions with a refresh in flight (one at a
	// time each): entries only while the Authenticator decides.
	refreshing map[*session]struct{}
}

// sessionSecurity is a session's share: its publish bucket (only the
// session's own handlers touch it) and its token expiry (guarded by
// hubSecurity.mu once the session is tracked: a refresh moves it).
type sessionSecurity struct {
	bucket bucket
	exp    int64 // unix seconds; 0: no expiry tracked; untracked: the session closed
}

// untracked is sessionSecurity.exp once the session closed: a refresh
// finishing after that must not schedule it again.
const untracked = -1

// expirySweep is how often expired tokens are looked for. Token exp has a
// one-second resolution, so a finer sweep would find nothing more.
const expirySweep = time.Second

// initSecurity stores the live settings and starts the expiry sweep.
// New calls it once, before the hub is shared.
func (h *Hub) initSecurity() {
	l := h.cfg.live() // withDefaults normalized it
	h.liveCfg.Store(&l)
	h.sec.conns = newConnLimiter()
	h.sec.users = make(map[string]map[*session]struct{})
	h.sec.due = make(map[int64]map[*session]struct{})
	h.sec.refreshing = make(map[*session]struct{})
	// Every node wants the system channel, so interest routing carries a
	// cluster-wide disconnect to every node.
	h.relay.Subscribe(sysDisconnect, false) // no wait: peers learn it from the snapshot of each link
	// The sweep runs even without an Authenticator: UpdateSecurity may
	// add one, and it costs one wake-up a second.
	h.wg.Add(1)
	go h.expiryLoop()
}

// trackSession indexes an opened session by user and token expiry.
func (h *Hub) trackSession(s *session) {
	var exp int64
	if id := s.client.ident.Load(); id != nil && !id.ExpiresAt.IsZero() {
		exp = id.ExpiresAt.Unix()
	}
	user := s.client.User()
	if user == "" && exp == 0 {
		return
	}
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if u := user; u != "" {
		set := h.sec.users[u]
		if set == nil {
			set = make(map[*session]struct{}, 1)
			h.sec.users[u] = set
		}
		set[s] = struct{}{}
	}
	h.scheduleLocked(s, exp)
}

// scheduleLocked sets the session's expiry to exp (0: none), moving it in
// the schedule. Caller holds h.sec.mu.
func (h *Hub) scheduleLocked(s *session, exp int64) {
	if old := s.sec.exp; old > 0 {
		if set := h.sec.due[old]; set != nil {
			delete(set, s)
			// An emptied set goes at once, and its second with it (long-lived
			// tokens and churn would otherwise keep one per connection for days).
			if len(set) == 0 {
				delete(h.sec.due, old)
				h.sec.times.remove(old)
			}
		}
	}
	s.sec.exp = exp
	if exp == 0 {
		return
	}
	set := h.sec.due[exp]
	if set == nil {
		set = make(map[*session]struct{}, 1)
		h.sec.due[exp] = set
		h.sec.times.add(exp)
	}
	set[s] = struct{}{}
}

// beginRefresh marks a refresh of the session in flight; false if one is
// already (refreshes apply one at a time, in the order sent, so a slow
// check of an older token cannot undo a newer one) or the session closed.
func (h *Hub) beginRefresh(s *session) bool {
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if _, busy := h.sec.refreshing[s]; busy || s.sec.exp == untracked {
		return false
	}
	h.sec.refreshing[s] = struct{}{}
	return true
}

// endRefresh ends the session's refresh and moves its expiry to its
// identity's (the refresh's, if it was applied), under mu. It returns the
// expiry in force, and false if the session closed meanwhile.
func (h *Hub) endRefresh(s *session) (time.Time, bool) {
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	delete(h.sec.refreshing, s)
	if s.sec.exp == untracked {
		return time.Time{}, false
	}
	expires := s.client.Identity().ExpiresAt
	var exp int64
	if !expires.IsZero() {
		exp = expires.Unix()
	}
	h.scheduleLocked(s, exp)
	return expires, true
}

// untrackSession undoes trackSession and gives back the connection slot.
func (h *Hub) untrackSession(s *session) {
	h.sec.conns.release(s.client.remote)
	user := s.client.User()
	if user == "" && s.sec.exp == 0 {
		return // not tracked; and never refreshed (it has no user), so read safely
	}
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if user != "" {
		if set := h.sec.users[user]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(h.sec.users, user)
			}
		}
	}
	h.scheduleLocked(s, 0)
	s.sec.exp = untracked
	delete(h.sec.refreshing, s)
}

func (h *Hub) expiryLoop() {
	defer h.wg.Done()
	t := time.NewTicker(expirySweep)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			h.expire(now.Unix())
		}
	}
}

// expire closes, with 4001, every session whose token's exp is at or
// before now (a JWT is valid only before its exp).
func (h *Hub) expire(now int64) {
	var victims []*session
	h.sec.mu.Lock()
	for {
		sec, ok := h.sec.times.due(now)
		if !ok {
			break
		}
		for s := range h.sec.due[sec] {
			victims = append(victims, s)
		}
		delete(h.sec.due, sec)
	}
	h.sec.mu.Unlock()
	for _, s := range victims {
		s.conn.Close(CloseTokenExpired, "token expired")
	}
}

// disconnectLocal closes every connection of user on this node with 4003
// and returns how many there were.
func (h *Hub) disconnectLocal(user string) int {
	h.sec.mu.Lock()
	victims := make([]*session, 0, len(h.sec.users[user]))
	for s := range h.sec.users[user] {
		victims = append(victims, s)
	}
	h.sec.mu.Unlock()
	for _, s := range victims {
		s.conn.Close(CloseDisconnected, "disconnected")
	}
	return len(victims)
}
