package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshcast/meshcast/internal/relay"
)

// The fake cluster records what the hub replicates.
func (f *fakeRelay) PresenceAdd(e relay.PresenceEntry) { f.record("present", e.Ch+" "+e.User) }
func (f *fakeRelay) PresenceRemove(ch, client string)  { f.record("absent", ch) }

// The fake hands over every peer's entries, so its view is whole, unless
// noView; then fetchPresence answers.
func (f *fakeRelay) PresenceView(string) bool { return !f.noView }
func (f *fakeRelay) PresenceFetch(_ context.Context, ch string) ([]relay.PresenceEntry, error) {
	if f.fetchPresence == nil {
		return nil, nil
	}
	return f.fetchPresence(ch)
}

// roomNS is a namespace with presence and join/leave events, "quiet" one
// with presence only.
var presenceNamespaces = map[string]Namespace{
	"room":  {Presence: true, JoinLeave: true},
	"quiet": {Presence: true},
	"authd": {Presence: true, JoinLeave: true, Subscribe: SubscribeAuthenticated},
}

// presenceHub serves a hub with the presence namespaces and token auth
// (users name themselves with tokens; anonymous clients are allowed).
func presenceHub(t testing.TB, mod func(*Config)) (*Hub, string) {
	t.Helper()
	v := hmacVerifier(t)
	cfg := DefaultConfig()
	cfg.Authenticator = AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		if r.URL.Query().Get("token") == "" {
			return Identity{}, nil
		}
		return v.Authenticate(r)
	})
	cfg.Security.Namespaces = presenceNamespaces
	if mod != nil {
		mod(&cfg)
	}
	return testHub(t, cfg)
}

// as dials url as user (a token), or anonymously when user is "".
func as(t testing.TB, url, user string, extra ...any) *client {
	t.Helper()
	if user == "" {
		return dial(t, url)
	}
	return dial(t, withToken(url, hs256(t, claims(user, time.Hour, extra...))))
}

// seen sends a presence_stats request of ch and reads up to its answer,
// returning the join and leave events before it ("join alice", "leave
// bob") and the answer. Events and answers are ordered on a connection,
// so the list is every event the table's changes so far caused.
var seenID = struct {
	sync.Mutex
	n int
}{n: 1000}

func seen(t testing.TB, c *client, ch string) (events []string, stats map[string]any) {
	t.Helper()
	seenID.Lock()
	seenID.n++
	id := seenID.n
	seenID.Unlock()
	c.SendText(fmt.Sprintf(`{"op":"presence_stats","ch":%q,"id":%d}`, ch, id))
	for {
		m := c.ReadJSON()
		switch m["op"] {
		case "join", "leave":
			events = append(events, fmt.Sprintf("%s %s", m["op"], m["user"]))
			if info, ok := m["info"]; ok {
				b, _ := json.Marshal(info)
				events[len(events)-1] += " " + string(b)
			}
		case "presence_stats":
			if m["id"] == float64(id) {
				return events, m
			}
		case "ack", "err":
			if m["op"] == "err" {
				t.Fatalf("unexpected %v", m)
			}
		}
	}
}

// subscribe subscribes c and returns the events that came with the ack.
func subscribe(t testing.TB, c *client, req string) []string {
	t.Helper()
	c.SendText(req)
	var events []string
	for {
		m := c.ReadJSON()
		switch m["op"] {
		case "ack":
			return events
		case "join", "leave":
			events = append(events, fmt.Sprintf("%s %s", m["op"], m["user"]))
		default:
			t.Fatalf("%s: want ack, got %v", req, m)
		}
	}
}

func stats(m map[string]any) string {
	return fmt.Sprintf("%v users %v clients", m["users"], m["clients"])
}

// TestJoinLeaveOncePerUser: a user's tabs make one join and one leave,
// whatever order they come and go in; anonymous clients are present as
// their client id.
func TestJoinLeaveOncePerUser(t *testing.T) {
	_, url := presenceHub(t, nil)
	w := as(t, url, "watcher")
	if got := subscribe(t, w, `{"op":"sub","ch":"room:a","id":1}`); !slices.Equal(got, []string{"join watcher"}) {
		t.Fatalf("the subscriber's own join: %v", got)
	}
	tab1, tab2 := as(t, url, "alice"), as(t, url, "alice")
	subscribe(t, tab1, `{"op":"sub","ch":"room:a","id":1}`)
	subscribe(t, tab2, `{"op":"sub","ch":"room:a","id":1}`)
	bob := as(t, url, "bob")
	subscribe(t, bob, `{"op":"sub","ch":"room:a","id":1,"info":{"name":"Bob"}}`)
	anon := as(t, url, "")
	subscribe(t, anon, `{"op":"sub","ch":"room:a","id":1}`)
	anonID := anon.Hello["client"].(string)

	events, st := seen(t, w, "room:a")
	want := []string{"join alice", `join bob {"name":"Bob"}`, "join " + anonID}
	if !slices.Equal(events, want) || stats(st) != "4 users 5 clients" {
		t.Fatalf("events %v, %s; want %v, 4 users 5 clients", events, stats(st), want)
	}

	tab1.Conn.Close()                                    // one tab gone: alice stays
	tab2.SendText(`{"op":"unsub","ch":"room:a","id":2}`) // the last: she leaves
	anon.Conn.Close()
	waitFor(t, 5*time.Second, "leaves", func() bool {
		evs, st := seen(t, w, "room:a")
		events = append(events, evs...)
		return stats(st) == "2 users 2 clients"
	})
	want = append(want, "leave alice", "leave "+anonID)
	slices.Sort(events[3:]) // the two leaves race
	slices.Sort(want[3:])
	if !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
}

// TestPresenceReply: members sorted by user with their connection counts
// and info, the stats, and a channel nobody is on.
func TestPresenceReply(t *testing.T) {
	_, url := presenceHub(t, nil)
	for _, u := range []string{"carol", "alice", "bob", "alice"} {
		c := as(t, url, u)
		subscribe(t, c, `{"op":"sub","ch":"quiet:x","id":1,"info":{"u":"`+u+`"}}`)
	}
	q := as(t, url, "")
	m := q.RoundTrip(`{"op":"presence","ch":"quiet:x","id":7}`)
	b, _ := json.Marshal(m)
	want := `{"ch":"quiet:x","id":7,"members":[{"clients":2,"info":{"u":"alice"},"user":"alice"},` +
		`{"clients":1,"info":{"u":"bob"},"user":"bob"},{"clients":1,"info":{"u":"carol"},"user":"carol"}],"op":"presence"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if m := q.RoundTrip(`{"op":"presence_stats","ch":"quiet:x","id":8}`); stats(m) != "3 users 4 clients" || m["id"] != float64(8) {
		t.Fatalf("stats %v", m)
	}
	if m := q.RoundTrip(`{"op":"presence","ch":"quiet:empty","id":9}`); fmt.Sprint(m["members"]) != "[]" {
		t.Fatalf("empty channel: %v", m)
	}
	// No join or leave events where the namespace does not ask for them.
	c := as(t, url, "dave")
	subscribe(t, c, `{"op":"sub","ch":"quiet:x","id":1}`)
	if evs, _ := seen(t, q, "quiet:x"); len(evs) != 0 {
		t.Fatalf("events on a namespace without join_leave: %v", evs)
	}
}

// TestPresencePaging: an answer bigger than half the write queue comes in
// pages, continued with "after".
func TestPresencePaging(t *testing.T) {
	h, url := presenceHub(t, func(cfg *Config) { cfg.Transport.WriteQueueSize = 8 << 10 })
	info := `{"pad":"` + strings.Repeat("x", 200) + `"}`
	for i := range 60 {
		c := as(t, url, fmt.Sprintf("u%02d", i))
		subscribe(t, c, `{"op":"sub","ch":"quiet:big","id":1,"info":`+info+`}`)
	}
	q := as(t, url, "")
	var users []string
	after := ""
	for pages := 1; ; pages++ {
		m := q.RoundTrip(`{"op":"presence","ch":"quiet:big","id":1,"after":"` + after + `"}`)
		for _, mem := range m["members"].([]any) {
			users = append(users, mem.(map[string]any)["user"].(string))
		}
		if m["more"] != true {
			if pages < 3 {
				t.Fatalf("%d pages for 60 members of 250 bytes in 4 KiB pages", pages)
			}
			break
		}
		after = users[len(users)-1]
	}
	all, err := h.Presence(context.Background(), "quiet:big") // the Go API has no pages
	if err != nil || len(users) != 60 || len(all) != 60 || !slices.IsSorted(users) {
		t.Fatalf("paged %d users (sorted %v), Go API %d, %v", len(users), slices.IsSorted(users), len(all), err)
	}
}

// TestPresenceInfo: info over 1 KiB is refused with 413; a token's info
// claim wins over the sub's; null means none.
func TestPresenceInfo(t *testing.T) {
	_, url := presenceHub(t, nil)
	c := as(t, url, "alice")
	big := `"` + strings.Repeat("x", MaxPresenceInfo) + `"`
	if r := mustErr(t, c, `{"op":"sub","ch":"room:i","id":1,"info":`+big+`}`, CodeTooLarge); !strings.Contains(r, "1024") {
		t.Fatalf("reason %q", r)
	}
	subscribe(t, c, `{"op":"sub","ch":"room:i","id":2,"info":null}`)
	tok := as(t, url, "bob", "info", map[string]any{"role": "admin"})
	subscribe(t, tok, `{"op":"sub","ch":"room:i","id":1,"info":{"role":"self-made"}}`)
	q := as(t, url, "")
	m := q.RoundTrip(`{"op":"presence","ch":"room:i","id":3}`)
	b, _ := json.Marshal(m["members"])
	if want := `[{"clients":1,"user":"alice"},{"clients":1,"info":{"role":"admin"},"user":"bob"}]`; string(b) != want {
		t.Fatalf("members %s, want %s", b, want)
	}
	// Info on a channel without presence is ignored.
	subscribe(t, c, `{"op":"sub","ch":"plain","id":4,"info":`+big+`}`)
	// A token with an info claim over the limit: its subs of presence
	// channels are refused, with the same code.
	huge := as(t, url, "carol", "info", strings.Repeat("y", MaxPresenceInfo+1))
	mustErr(t, huge, `{"op":"sub","ch":"room:i","id":1}`, CodeTooLarge)
	subscribe(t, huge, `{"op":"sub","ch":"plain","id":2}`)
}

// TestPresenceNeedsSubscribePermission: presence is readable by whoever
// may subscribe, and refused like a sub otherwise.
func TestPresenceNeedsSubscribePermission(t *testing.T) {
	f := newFakeRelay()
	close(f.release)
	_, url := presenceHub(t, func(cfg *Config) { cfg.Cluster = f })
	anon := as(t, url, "")
	alice := as(t, url, "alice")
	for _, tc := range []struct {
		c    *client
		req  string
		code int
		want string
	}{
		{anon, `{"op":"presence","ch":"authd:x","id":1}`, CodeForbidden, "needs a token"},
		{anon, `{"op":"presence_stats","ch":"authd:x","id":1}`, CodeForbidden, "needs a token"},
		{alice, `{"op":"presence","ch":"room:#bob","id":1}`, CodeForbidden, "personal channel"},
		{alice, `{"op":"presence","ch":"$sys:online","id":1}`, CodeForbidden, "reserved"},
		{alice, `{"op":"presence","ch":"plain","id":1}`, CodeBadRequest, "not enabled"},
		{alice, `{"op":"presence","ch":"bad name","id":1}`, CodeBadRequest, "space"},
		{alice, `{"op":"presence","ch":"room:x","after":3,"id":1}`, CodeBadRequest, `"after"`},
	} {
		if r := mustErr(t, tc.c, tc.req, tc.code); !strings.Contains(r, tc.want) {
			t.Errorf("%s: reason %q, want %q", tc.req, r, tc.want)
		}
	}
	if m := alice.RoundTrip(`{"op":"presence","ch":"authd:x","id":2}`); m["op"] != "presence" {
		t.Fatalf("allowed: %v", m)
	}
	if m := alice.RoundTrip(`{"op":"presence","ch":"room:#alice","id":2}`); m["op"] != "presence" {
		t.Fatalf("her personal channel: %v", m)
	}
	f.setStanding(errors.New("isolated"))
	mustErr(t, alice, `{"op":"presence","ch":"room:x","id":3}`, CodeUnavailable)
}

// TestPresenceHooksRefuse: an AuthorizeSubscribe hook decides presence
// too, and a subscribed client may read presence without asking again.
func TestPresenceHooksRefuse(t *testing.T) {
	_, url := presenceHub(t, func(cfg *Config) {
		cfg.AuthorizeSubscribe = func(c *Client, ch string) error {
			if c.User() != "root" {
				return &Error{Code: 403, Reason: "root only"}
			}
			return nil
		}
	})
	if r := mustErr(t, as(t, url, "alice"), `{"op":"presence","ch":"room:x","id":1}`, 403); r != "root only" {
		t.Fatalf("reason %q", r)
	}
	root := as(t, url, "root")
	subscribe(t, root, `{"op":"sub","ch":"room:x","id":1}`)
	if m := root.RoundTrip(`{"op":"presence_stats","ch":"room:x","id":2}`); stats(m) != "1 users 1 clients" {
		t.Fatalf("%v", m)
	}
}

// TestPresenceAPI: GET /api/presence and /api/presence_stats with the key.
func TestPresenceAPI(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Security.Namespaces = presenceNamespaces
	_, wsURL, api := apiHub(t, cfg, "k")
	c := dial(t, wsURL)
	subscribe(t, c, `{"op":"sub","ch":"room:api","id":1,"info":[1]}`)
	id := c.Hello["client"].(string)

	status, body := get(t, api+"presence?ch=room:api", "k")
	if want := `{"ch":"room:api","members":[{"user":"` + id + `","clients":1,"info":[1]}]}`; status != 200 || body != want {
		t.Fatalf("%d %s, want %s", status, body, want)
	}
	status, body = get(t, api+"presence_stats?ch=room:api", "k")
	if status != 200 || body != `{"ch":"room:api","users":1,"clients":1}` {
		t.Fatalf("%d %s", status, body)
	}
	for _, tc := range []struct {
		url, key string
		status   int
	}{
		{api + "presence?ch=room:api", "", 401},
		{api + "presence?ch=room:api", "wrong", 401},
		{api + "presence?ch=plain", "k", 400},
		{api + "presence?ch=", "k", 400},
		{api + "presence_stats?ch=%24sys:online", "k", 403},
	} {
		if status, body := get(t, tc.url, tc.key); status != tc.status || !strings.Contains(body, `"code":`) {
			t.Errorf("%s: %d %s, want %d", tc.url, status, body, tc.status)
		}
	}
	if status, _ := post(t, api+"presence?ch=room:api", "k", "{}"); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", status)
	}
	_, _, off := apiHub(t, cfg, "")
	if status, _ := get(t, off+"presence?ch=room:api", ""); status != 404 {
		t.Fatalf("API off: %d", status)
	}
}

func get(t testing.TB, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestPresenceFromPeers: entries the cluster hands over count with the
// local ones, per user: a user on two nodes is one join, and dropping one
// node's entries leaves her present.
func TestPresenceFromPeers(t *testing.T) {
	f := newFakeRelay()
	close(f.release)
	_, url := presenceHub(t, func(cfg *Config) { cfg.Cluster = f })
	w := as(t, url, "w")
	subscribe(t, w, `{"op":"sub","ch":"room:p","id":1}`)
	b, c := relay.Owner{Node: "b", Seq: 1}, relay.Owner{Node: "c", Seq: 2}
	f.recv.PresenceSync(b, true, []relay.PresenceChannel{{Ch: "room:p", Entries: []relay.PresenceEntry{{Ch: "room:p", Client: "b1", User: "alice", Info: []byte(`{"at":"b"}`)}, {Ch: "room:p", Client: "b2", User: "bob"}}}})
	f.recv.PresenceChange(c, relay.PresenceEntry{Ch: "room:p", Client: "c1", User: "alice"}, true, false)
	f.recv.PresenceChange(c, relay.PresenceEntry{Ch: "room:p", Client: "c2", User: "carol", Info: []byte(`{bad`)}, true, false)
	events, st := seen(t, w, "room:p")
	if want := []string{`join alice {"at":"b"}`, "join bob", "join carol"}; !slices.Equal(events, want) || stats(st) != "4 users 5 clients" {
		t.Fatalf("%v %s", events, stats(st))
	}
	f.recv.PresenceDrop(b) // alice is still on c; bob was only on b
	// b comes back with bob on a new connection, and without alice: a
	// sync replaces its set, so only bob joins again.
	f.recv.PresenceSync(relay.Owner{Node: "b", Seq: 3}, true, []relay.PresenceChannel{{Ch: "room:p", Entries: []relay.PresenceEntry{{Ch: "room:p", Client: "b3", User: "bob"}}}})
	f.recv.PresenceChange(c, relay.PresenceEntry{Ch: "room:p", Client: "c1", User: "alice"}, false, false)
	f.recv.PresenceSync(c, false, []relay.PresenceChannel{{Ch: "room:p"}}) // c's set of room:p is now empty: carol leaves
	events, st = seen(t, w, "room:p")
	if want := []string{"leave bob", "join bob", "leave alice", "leave carol"}; !slices.Equal(events, want) || stats(st) != "2 users 2 clients" {
		t.Fatalf("%v %s", events, stats(st))
	}
	_, interest := f.snapshot()
	if want := []string{"sub room:p", "present room:p w"}; !slices.Equal(interest, want) {
		t.Fatalf("relay calls %v, want %v", interest, want)
	}
}

// TestPresenceTableSync: a sync that moves a user to other connections of
// the same node, or changes its info, is no leave and join.
func TestPresenceTableSync(t *testing.T) {
	tb := newPresenceTable()
	e := func(client, user, info string) relay.PresenceEntry {
		var b []byte
		if info != "" {
			b = []byte(info)
		}
		return relay.PresenceEntry{Ch: "x", Client: client, User: user, Info: b}
	}
	names := func(evs []presenceEvent) (out []string) {
		for _, ev := range evs {
			out = append(out, fmt.Sprint(ev.join, " ", ev.user))
		}
		return out
	}
	evs := tb.syncChannelLocked(7, "x", []relay.PresenceEntry{e("1", "ann", ""), e("2", "ben", "")}, nil)
	if got := names(evs); !slices.Equal(got, []string{"true ann", "true ben"}) {
		t.Fatal(got)
	}
	evs = tb.syncChannelLocked(7, "x", []relay.PresenceEntry{e("3", "ann", ""), e("2", "ben", `"new"`)}, nil)
	if len(evs) != 0 || string(tb.chans["x"].users["ben"].info()) != `"new"` || tb.entries != 2 {
		t.Fatalf("events %v, info %s, entries %d", names(evs), tb.chans["x"].users["ben"].info(), tb.entries)
	}
	evs = tb.removeOwnerLocked(7, func(string, string, string) bool { return true }, nil)
	if got := names(evs); !slices.Equal(got, []string{"false ann", "false ben"}) || len(tb.chans) != 0 || len(tb.owners) != 0 || tb.entries != 0 {
		t.Fatalf("%v, %d channels, %d owners, %d entries left", got, len(tb.chans), len(tb.owners), tb.entries)
	}
}

// TestOnlineHooks: a user is online from its first connection on any
// node to the end of its last one, reported once each way, in order.
func TestOnlineHooks(t *testing.T) {
	f := newFakeRelay()
	close(f.release)
	var mu sync.Mutex
	var got []string
	note := func(s string) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}
	log := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(got, ",")
	}
	h, url := presenceHub(t, func(cfg *Config) {
		cfg.Cluster = f
		cfg.OnUserOnline = func(u string) { note("+" + u) }
		cfg.OnUserOffline = func(u string) { note("-" + u) }
	})
	a1 := as(t, url, "alice")
	waitFor(t, 5*time.Second, "alice online", func() bool { return log() == "+alice" })
	a2 := as(t, url, "alice")
	as(t, url, "") // anonymous connections are no user
	bob := relay.Owner{Node: "b", Seq: 1}
	f.recv.PresenceChange(bob, relay.PresenceEntry{Ch: onlineChannel, Client: "b1", User: "bob"}, true, true)
	f.recv.PresenceChange(bob, relay.PresenceEntry{Ch: onlineChannel, Client: "b2", User: "alice"}, true, true)
	waitFor(t, 5*time.Second, "bob online", func() bool { return log() == "+alice,+bob" })
	if !h.Online("alice") || !h.Online("bob") || h.Online("carol") {
		t.Fatal("Online disagrees")
	}
	a1.Conn.Close()
	a2.Conn.Close()
	f.recv.PresenceDrop(bob) // alice's last connection was on b
	waitFor(t, 5*time.Second, "both offline", func() bool {
		l := log()
		return l == "+alice,+bob,-alice,-bob" || l == "+alice,+bob,-bob,-alice"
	})
	_, interest := f.snapshot()
	if slices.ContainsFunc(interest, func(s string) bool { return strings.Contains(s, onlineChannel) }) {
		t.Fatalf("%v", interest) // record() skips reserved channels: replicated, not interest
	}
}

// TestGoAPIPresence: Presence and PresenceStats refuse what they cannot
// answer; a server-side subscribe carries its info.
func TestGoAPIPresence(t *testing.T) {
	h, url := presenceHub(t, func(cfg *Config) {
		cfg.OnConnect = func(c *Client) {
			if err := c.Subscribe(context.Background(), "quiet:go", WithInfo(json.RawMessage(`{"by":"server"}`))); err != nil {
				t.Errorf("server-side subscribe: %v", err)
			}
			if err := c.Subscribe(context.Background(), "quiet:bad", WithInfo(json.RawMessage(`{`))); !errors.Is(err, ErrBadData) {
				t.Errorf("bad info: %v", err)
			}
		}
	})
	as(t, url, "alice")
	ctx := context.Background()
	waitFor(t, 5*time.Second, "subscribed by the server", func() bool {
		st, err := h.PresenceStats(ctx, "quiet:go")
		return err == nil && st == PresenceStats{Users: 1, Clients: 1}
	})
	ms, err := h.Presence(ctx, "quiet:go")
	if err != nil || len(ms) != 1 || string(ms[0].Info) != `{"by":"server"}` {
		t.Fatalf("%v %v", ms, err)
	}
	for ch, want := range map[string]error{"plain": ErrNoPresence, "$sys:online": ErrReserved, "": ErrBadChannel} {
		if _, err := h.Presence(ctx, ch); !errors.Is(err, want) {
			t.Errorf("Presence(%q) = %v, want %v", ch, err, want)
		}
	}
	if st := h.Stats().Presence; st.Local != 1 || st.Entries != 1 || st.Channels != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestJoinLeaveNeedsPresence: the config is refused, clearly.
func TestJoinLeaveNeedsPresence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Security.Namespaces = map[string]Namespace{"chat": {JoinLeave: true}}
	_, err := New(cfg)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `"chat": join_leave needs presence`) {
		t.Fatalf("New: %v", err)
	}
}

// TestPresenceOfClosedSessions: a slow consumer cut off, a connection
// closed by the server: whatever ends a session ends its presence.
func TestPresenceOfClosedSessions(t *testing.T) {
	h, url := presenceHub(t, nil)
	var cs []*client
	for i := range 20 {
		c := as(t, url, fmt.Sprintf("u%d", i%7))
		subscribe(t, c, `{"op":"sub","ch":"quiet:c","id":1}`)
		subscribe(t, c, `{"op":"sub","ch":"room:c","id":2}`)
		cs = append(cs, c)
	}
	if st := h.Stats().Presence; st.Entries != 40 {
		t.Fatalf("%+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Disconnect(ctx, "u3"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[:10] {
		c.Conn.Close()
	}
	waitFor(t, 5*time.Second, "entries gone", func() bool {
		st, _ := h.PresenceStats(ctx, "quiet:c")
		return st == PresenceStats{Users: 6, Clients: 8}
	})
}

// FuzzPresenceRequest checks the decoder's presence fields against
// encoding/json: whatever it accepts has the byte-identical "info" and
// the same "after".
func FuzzPresenceRequest(f *testing.F) {
	for _, c := range []string{
		`{"op":"sub","ch":"room:a","id":1,"info":{"name":"Bob","tags":[1,"x"]}}`,
		`{"op":"presence","ch":"room:a","id":2,"after":"al\"ice"}`,
		`{"op":"presence_stats","ch":"room:a"}`,
		`{"info":null,"op":"sub","ch":"x"}`,
		`{"op":"presence","after":5}`,
		`{"op":"sub","info":1,"info":2}`,
	} {
		f.Add([]byte(c))
		for i := 1; i < len(c); i += 5 {
			f.Add([]byte(c[:i]))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decodeRequest(frame)
		if err != nil || !utf8.Valid(frame) {
			return
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(frame, &raw); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if r, ok := raw["info"]; ok != (req.info != nil) || (ok && !bytes.Equal(r, req.info)) {
			t.Fatalf("info %q vs %q", req.info, r)
		}
		if r, ok := raw["after"]; ok {
			var after string
			if err := json.Unmarshal(r, &after); err != nil || after != req.after {
				t.Fatalf("after %q vs %s", req.after, r)
			}
		}
	})
}

// TestPresenceWithSince: a sub that recovers from a position on a channel
// with history and presence makes its client present, with its info, and
// its leave ends that.
func TestPresenceWithSince(t *testing.T) {
	_, url := presenceHub(t, func(cfg *Config) {
		cfg.Security.Namespaces = map[string]Namespace{"hp": {History: 10, Presence: true, JoinLeave: true}}
	})
	a := as(t, url, "ann")
	subscribe(t, a, `{"op":"sub","ch":"hp:x","id":1}`)
	a.SendText(`{"op":"pub","ch":"hp:x","data":1,"id":2}`)
	var pos string
	for pos == "" {
		if m := a.ReadJSON(); m["op"] == "msg" {
			pos = m["pos"].(string)
		}
	}
	b := as(t, url, "bob")
	b.SendText(`{"op":"sub","ch":"hp:x","id":1,"since":"` + pos + `","info":{"n":2}}`)
	for m := b.ReadJSON(); m["op"] != "ack"; m = b.ReadJSON() {
	}
	events, st := seen(t, a, "hp:x")
	if !slices.Contains(events, `join bob {"n":2}`) || stats(st) != "2 users 2 clients" {
		t.Fatalf("events %v, %s", events, stats(st))
	}
	b.Conn.Close()
	waitFor(t, 5*time.Second, "bob's leave", func() bool {
		evs, st := seen(t, a, "hp:x")
		events = append(events, evs...)
		return stats(st) == "1 users 1 clients"
	})
	if !slices.Contains(events, "leave bob") {
		t.Fatalf("events %v", events)
	}
}

// TestPresenceSupersedePerChannel: a node back under a new stay (its drop
// pending) brings its sets one channel at a time; each supersedes the old
// stay's entries of its own channel only, so its users never seem to
// leave, and the old stay's drop takes what no set replaced.
func TestPresenceSupersedePerChannel(t *testing.T) {
	f := newFakeRelay()
	close(f.release)
	_, url := presenceHub(t, func(cfg *Config) { cfg.Cluster = f })
	w := as(t, url, "w")
	subscribe(t, w, `{"op":"sub","ch":"room:p","id":1}`)
	subscribe(t, w, `{"op":"sub","ch":"room:q","id":2}`)
	old, back := relay.Owner{Node: "b", Seq: 1}, relay.Owner{Node: "b", Seq: 2}
	entry := func(ch, client, user string) relay.PresenceEntry {
		return relay.PresenceEntry{Ch: ch, Client: client, User: user}
	}
	f.recv.PresenceSync(old, true, []relay.PresenceChannel{
		{Ch: "room:p", Entries: []relay.PresenceEntry{entry("room:p", "b1", "alice")}},
		{Ch: "room:q", Entries: []relay.PresenceEntry{entry("room:q", "b1", "alice")}},
	})
	seen(t, w, "room:p")
	// Back: its full set does not know room:p and room:q are wanted yet;
	// then room:p's set comes, with alice on a new connection.
	f.recv.PresenceSync(back, true, nil)
	f.recv.PresenceSync(back, false, []relay.PresenceChannel{{Ch: "room:p", Entries: []relay.PresenceEntry{entry("room:p", "b2", "alice")}}})
	if events, st := seen(t, w, "room:p"); len(events) != 0 || stats(st) != "2 users 2 clients" {
		t.Fatalf("room:p: %v %s; want no event, w and alice", events, stats(st))
	}
	if events, st := seen(t, w, "room:q"); len(events) != 0 || stats(st) != "2 users 2 clients" {
		t.Fatalf("room:q before the old stay's drop: %v %s", events, stats(st))
	}
	f.recv.PresenceDrop(old) // room:q had no set from the new stay: alice leaves there only
	if events, st := seen(t, w, "room:q"); !slices.Equal(events, []string{"leave alice"}) || stats(st) != "1 users 1 clients" {
		t.Fatalf("room:q after the drop: %v %s", events, stats(st))
	}
	if events, st := seen(t, w, "room:p"); len(events) != 0 || stats(st) != "2 users 2 clients" {
		t.Fatalf("room:p after the drop: %v %s", events, stats(st))
	}
}
