package client

// A fake meshcast speaking what the real server is gaining (gap, err 503,
// history with pos/since/recovered), with knobs to fail the ways the
// client must survive. Fakes sharing one store act as nodes of a cluster.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

type fakeStore struct {
	mu     sync.Mutex
	window int
	seq    int
	logs   map[string][]HistoryMessage
	fakes  []*fake
}

func newStore(window int) *fakeStore {
	return &fakeStore{window: window, logs: map[string][]HistoryMessage{}}
}

type fakeConn struct {
	ws   *fakeWS
	auth string
}

type fakeWS struct {
	mu sync.Mutex
	nc interface {
		Write([]byte) (int, error)
		Close() error
	}
}

func (w *fakeWS) send(v any) {
	b, _ := json.Marshal(v)
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = wsutil.WriteServerText(w.nc, b)
}

type fake struct {
	t     testing.TB
	store *fakeStore
	srv   *httptest.Server
	URL   string
	wg    sync.WaitGroup

	mu      sync.Mutex
	history bool
	tokens  map[string]bool // nil: no token needed
	refuse  int             // upgrades refused with 503 + Retry-After: 1
	failSub map[string][]int
	// failSubIn: codes answered to the next subs of a channel after the
	// sub is put in place (the hub's 429 when too many subs wait: the
	// connection receives, the ack never comes).
	failSubIn map[string][]int
	failPub   int
	swallow   func(op string) bool // true: no answer
	hangUp    bool                 // close each connection (1011) right after its hello
	// expires, when set, gives the hello's expires (0: none); a refresh
	// is answered with failRefresh's codes in turn, then with an ack
	// whose expires is ackExpires' (nil or 0: none). Both are called
	// under mu.
	expires     func() int64
	ttl         *int64 // when set, the hello's ttl: the seconds left, whatever expires says
	failRefresh []int
	ackExpires  func() int64
	conns       map[*fakeConn]bool
	subs        map[string]map[*fakeConn]bool
	received    []map[string]any
	auths       []string
}

func startFake(t testing.TB, store *fakeStore) *fake {
	t.Helper()
	f := &fake{t: t, store: store, history: true, failSub: map[string][]int{}, failSubIn: map[string][]int{},
		swallow: func(string) bool { return false },
		conns:   map[*fakeConn]bool{}, subs: map[string]map[*fakeConn]bool{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.upgrade))
	f.URL = "ws://" + f.srv.Listener.Addr().String() + "/ws"
	f.srv.Start() // after the fields its handlers read are set
	store.mu.Lock()
	store.fakes = append(store.fakes, f)
	store.mu.Unlock()
	t.Cleanup(func() {
		f.kill()
		f.srv.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fake) upgrade(w http.ResponseWriter, r *http.Request) {
	// Counted from the start: srv.Close waits for a request only until
	// it is hijacked, so an Add after the upgrade could race the
	// cleanup's Wait (the race detector saw it).
	f.wg.Add(1)
	defer f.wg.Done()
	auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	f.auths = append(f.auths, auth)
	client := fmt.Sprint("c", len(f.auths))
	refuse := f.refuse > 0
	if refuse {
		f.refuse--
	}
	bad := f.tokens != nil && !f.tokens[auth]
	f.mu.Unlock()
	if refuse {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"code":503,"reason":"node not ready"}`, http.StatusServiceUnavailable)
		return
	}
	if bad {
		http.Error(w, `{"code":401,"reason":"bad token"}`, http.StatusUnauthorized)
		return
	}
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	c := &fakeConn{ws: &fakeWS{nc: nc}, auth: auth}
	f.mu.Lock()
	f.conns[c] = true
	f.mu.Unlock()
	hello := map[string]any{"op": "hello", "client": client, "node": f.URL}
	f.mu.Lock()
	hangUp, exp, ttl := f.hangUp, call(f.expires), f.ttl
	f.mu.Unlock()
	if exp != 0 {
		hello["expires"] = exp
	}
	if ttl != nil {
		hello["ttl"] = *ttl
	}
	c.ws.send(hello)
	if hangUp {
		c.ws.mu.Lock()
		_ = ws.WriteFrame(nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusInternalServerError, "crashing")))
		c.ws.mu.Unlock()
		f.gone(c)
		nc.Close()
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.gone(c)
		for {
			b, err := wsutil.ReadClientText(nc)
			if err != nil {
				nc.Close()
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				f.frame(c, m)
			}
		}
	}()
}

func (f *fake) gone(c *fakeConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	for _, set := range f.subs {
		delete(set, c)
	}
}

func (f *fake) frame(c *fakeConn, m map[string]any) {
	op, _ := m["op"].(string)
	ch, _ := m["ch"].(string)
	f.mu.Lock()
	f.received = append(f.received, m)
	swallow, history := f.swallow(op), f.history
	f.mu.Unlock()
	if swallow {
		return
	}
	reply := func(v map[string]any) { v["id"] = m["id"]; c.ws.send(v) }
	fail := func(code int, reason string) {
		reply(map[string]any{"op": "err", "code": code, "reason": reason})
	}
	switch op {
	case "sub":
		f.mu.Lock()
		codes := f.failSub[ch]
		if len(codes) > 0 {
			f.failSub[ch] = codes[1:]
		}
		f.mu.Unlock()
		if len(codes) > 0 {
			fail(codes[0], "refused by the test")
			return
		}
		ack := map[string]any{"op": "ack"}
		since, withSince := m["since"].(string)
		if withSince && !history {
			fail(400, "channel has no history")
			return
		}
		// Replay and subscribe under the store's lock: a publish comes
		// before (replayed) or after (delivered), never in between.
		f.store.mu.Lock()
		if withSince {
			missed, found := f.store.afterLocked(ch, since)
			for _, h := range missed {
				c.ws.send(map[string]any{"op": "msg", "ch": ch, "data": h.Data, "pos": h.Pos})
			}
			ack["recovered"] = found
		}
		f.mu.Lock()
		if f.subs[ch] == nil {
			f.subs[ch] = map[*fakeConn]bool{}
		}
		f.subs[ch][c] = true
		in := f.failSubIn[ch]
		if len(in) > 0 {
			f.failSubIn[ch] = in[1:]
		}
		f.mu.Unlock()
		f.store.mu.Unlock()
		if len(in) > 0 {
			fail(in[0], "refused by the test, after the sub was put in place")
			return
		}
		reply(ack)
	case "unsub":
		f.mu.Lock()
		delete(f.subs[ch], c)
		f.mu.Unlock()
		reply(map[string]any{"op": "ack"})
	case "pub":
		f.mu.Lock()
		code := f.failPub
		f.mu.Unlock()
		if code != 0 {
			fail(code, "cluster unavailable: test")
			return
		}
		data, _ := json.Marshal(m["data"])
		f.publish(ch, string(data))
		reply(map[string]any{"op": "ack"})
	case "history":
		if !history {
			fail(400, "unknown op")
			return
		}
		limit, _ := m["limit"].(float64)
		reply(map[string]any{"op": "history", "ch": ch, "msgs": f.store.last(ch, int(limit))})
	case "refresh":
		f.mu.Lock()
		codes := f.failRefresh
		if len(codes) > 0 {
			f.failRefresh = codes[1:]
		}
		exp := call(f.ackExpires)
		f.mu.Unlock()
		if len(codes) > 0 {
			fail(codes[0], "refused by the test")
			return
		}
		ack := map[string]any{"op": "ack"}
		if exp != 0 {
			ack["expires"] = exp
		}
		reply(ack)
	default:
		fail(400, "unknown op")
	}
}

// call is fn(), or 0 without fn.
func call(fn func() int64) int64 {
	if fn == nil {
		return 0
	}
	return fn()
}

func (s *fakeStore) appendLocked(ch, data string) string {
	s.seq++
	pos := fmt.Sprint("p", s.seq)
	log := append(s.logs[ch], HistoryMessage{Data: json.RawMessage(data), Pos: pos})
	if len(log) > s.window {
		log = log[1:]
	}
	s.logs[ch] = log
	return pos
}

// afterLocked is what came after pos, and whether pos is still in the
// window.
func (s *fakeStore) afterLocked(ch, pos string) ([]HistoryMessage, bool) {
	log := s.logs[ch]
	for i, h := range log {
		if h.Pos == pos {
			return append([]HistoryMessage(nil), log[i+1:]...), true
		}
	}
	return append([]HistoryMessage(nil), log...), false
}

func (s *fakeStore) last(ch string, n int) []HistoryMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.logs[ch]
	if n > 0 && n < len(log) {
		log = log[len(log)-n:]
	}
	return append([]HistoryMessage{}, log...)
}

// publish stores data (with history) and sends it to the subscribers of
// every fake of the store.
func (f *fake) publish(ch, data string) {
	f.store.mu.Lock()
	fakes := append([]*fake(nil), f.store.fakes...)
	f.store.mu.Unlock()
	f.mu.Lock()
	history := f.history
	f.mu.Unlock()
	msg := map[string]any{"op": "msg", "ch": ch, "data": json.RawMessage(data)}
	// Storing and sending under the store's lock: every subscriber sees
	// the store's order, and a sub's replay (under the same lock) has a
	// message or gets it live, never both.
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	if history {
		msg["pos"] = f.store.appendLocked(ch, data)
	}
	for _, o := range fakes {
		o.mu.Lock()
		for c := range o.subs[ch] {
			c.ws.send(msg)
		}
		o.mu.Unlock()
	}
}

func (f *fake) gap(ch string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.subs[ch] {
		c.ws.send(map[string]any{"op": "gap", "ch": ch})
	}
}

// closeAll closes every connection with a close frame.
func (f *fake) closeAll(code ws.StatusCode, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.ws.mu.Lock()
		_ = ws.WriteFrame(c.ws.nc, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
		c.ws.nc.Close()
		c.ws.mu.Unlock()
	}
}

// closeAllReset sends a close frame and resets the connection at once
// (SO_LINGER 0), as a server does that closes a socket with unread data:
// the client's answer to the close frame fails.
func (f *fake) closeAllReset(code ws.StatusCode, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.ws.mu.Lock()
		_ = ws.WriteFrame(c.ws.nc, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
		if tc, ok := c.ws.nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.ws.nc.Close()
		c.ws.mu.Unlock()
	}
}

// kill drops every connection with no close frame.
func (f *fake) kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.ws.nc.Close()
	}
}

func (f *fake) count(op, ch string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.received {
		if m["op"] == op && (ch == "" || m["ch"] == ch) {
			n++
		}
	}
	return n
}

func (f *fake) set(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
