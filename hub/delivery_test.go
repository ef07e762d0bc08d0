package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport/wstest"
)

func TestFiveThousandPublishesOnceInOrder(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	sub := dial(t, url)
	sub.MustAck(`{"op":"sub","ch":"seq","id":1}`)
	pub := dial(t, url)
	const n = 5000
	go func() {
		for i := range n {
			if err := pub.WriteText(fmt.Sprintf(`{"op":"pub","ch":"seq","data":%d}`, i)); err != nil {
				return
			}
		}
	}()
	for i := range n {
		m := sub.ReadJSON()
		if m["op"] != "msg" || m["data"] != float64(i) {
			t.Fatalf("delivery %d: got %v", i, m)
		}
	}
	// Nothing more: a marker published now is the very next frame.
	pub.WriteText(`{"op":"pub","ch":"seq","data":"end"}`)
	if m := sub.ReadJSON(); m["data"] != "end" {
		t.Fatalf("extra delivery after %d: %v", n, m)
	}
}

func TestSlowConsumerIsCutOffOthersGetEverything(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Transport.WriteQueueSize = 64 << 10
	cfg.Transport.MaxMessageSize = 16 << 10
	h, url := testHub(t, cfg)

	slow := dial(t, url) // subscribes, then never reads again
	slow.MustAck(`{"op":"sub","ch":"firehose","id":1}`)
	fast := dial(t, url)
	fast.MustAck(`{"op":"sub","ch":"firehose","id":1}`)

	const n = 3000
	data := `"` + strings.Repeat("x", 4000) + `"`
	// The reading client keeps up: the publisher never runs more than a
	// few frames ahead of it, while the other client reads nothing.
	var got atomic.Int64
	var stopped atomic.Pointer[string] // why the reading client stopped early
	received := make(chan int, 1)
	go func() {
		for got.Load() < n {
			f, err := fast.ReadFrame()
			if err != nil || f.Header.OpCode != ws.OpText {
				why := fmt.Sprintf("err %v, opcode %v, payload %.80q", err, f.Header.OpCode, f.Payload)
				stopped.Store(&why)
				break
			}
			got.Add(1)
		}
		received <- int(got.Load())
	}()
	for i := range n {
		// Generous: both cores busy with other work under -race once took
		// over 10 s here. The reader stopping is reported as such.
		waitFor(t, 30*time.Second, "reader to keep up", func() bool { return got.Load() >= int64(i-8) || stopped.Load() != nil })
		if why := stopped.Load(); why != nil {
			t.Fatalf("the reading client stopped after %d frames: %s", got.Load(), *why)
		}
		if err := h.Publish(context.Background(), "firehose", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-received; got != n {
		t.Fatalf("reading client got %d of %d", got, n)
	}
	if code, reason := slow.ExpectClose(); code != 1008 || reason != "slow consumer" {
		t.Fatalf("slow client closed with %d %q", code, reason)
	}
	if got := h.Stats().Transport.SlowConsumerCloses; got != 1 {
		t.Fatalf("slow consumer closes = %d, want 1", got)
	}
}

func TestShutdownClosesClientsWith1001(t *testing.T) {
	h, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(h)
	defer srv.Close()
	var clients []*client
	for range 3 {
		c := dial(t, srv.wsURL)
		c.MustAck(`{"op":"sub","ch":"a","id":1}`)
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if code, _ := c.ExpectClose(); code != 1001 {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	if err := h.Publish(context.Background(), "a", []byte("1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after shutdown: %v", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}

func TestPublishAPI(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"news","id":1}`)
	ctx := context.Background()
	if err := h.Publish(ctx, "news", []byte(`{"k": 1}`)); err != nil {
		t.Fatal(err)
	}
	if got := string(c.ReadText()); got != `{"op":"msg","ch":"news","data":{"k": 1}}` {
		t.Fatalf("got %s", got)
	}
	for _, tc := range []struct {
		ch, data string
		want     error
	}{
		{"", "1", ErrBadChannel},
		{"a b", "1", ErrBadChannel},
		{"news", "{", ErrBadData},
		{"news", "1 2", ErrBadData},
		{"news", `"` + strings.Repeat("x", 40<<10) + `"`, ErrTooLarge},
	} {
		if err := h.Publish(ctx, tc.ch, []byte(tc.data)); !errors.Is(err, tc.want) {
			t.Errorf("Publish(%q, %.10q) = %v, want %v", tc.ch, tc.data, err, tc.want)
		}
	}
}

// fakeRelay is a cluster for hub tests (relay.Cluster and relay.Relay): it
// records what the hub tells it, holds sub acks until released (or times
// them out), and reports the standing it is given.
type fakeRelay struct {
	mu        sync.Mutex
	published []string
	interest  []string // "sub x" / "unsub x", in call order
	standing  error
	recv      relay.Receiver
	release   chan struct{} // closed: every ticket is confirmed
	timeout   chan struct{} // closed: waits time out instead
	waits     []bool        // per AwaitConfirmed call: was its deadline already past
	// fetch, if set, answers Fetch (the peers' history)
	fetch func(ch string, after history.Frontier) ([]history.Result, bool, error)
	// noView: PresenceView is false, and fetchPresence answers PresenceFetch
	noView        bool
	fetchPresence func(ch string) ([]relay.PresenceEntry, error)
}

func newFakeRelay() *fakeRelay {
	return &fakeRelay{release: make(chan struct{}), timeout: make(chan struct{})}
}

func (f *fakeRelay) Attach(r relay.Receiver, _ *slog.Logger) (relay.Relay, error) {
	f.recv = r
	return f, nil
}

func (f *fakeRelay) Name() string { return "fake" }

func (f *fakeRelay) Publish(ch string, data []byte, except string, _ *relay.Stamp, stored func(error)) {
	f.mu.Lock()
	f.published = append(f.published, ch+"="+string(data)+except)
	f.mu.Unlock()
	if stored != nil {
		stored(nil)
	}
}

func (f *fakeRelay) Fetch(_ context.Context, ch string, after history.Frontier, _ int) ([]history.Result, bool, error) {
	f.mu.Lock()
	fetch := f.fetch
	f.mu.Unlock()
	if fetch == nil {
		return nil, true, nil
	}
	return fetch(ch, after)
}

func (f *fakeRelay) record(what, ch string) {
	if isReserved(ch) {
		return // the hub's own system channels, wanted from New on
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.interest = append(f.interest, what+" "+ch)
}

func (f *fakeRelay) Subscribe(ch string, _ bool) (relay.Ticket, bool) {
	f.record("sub", ch)
	return 1, f.Confirmed(ch, 1)
}
func (f *fakeRelay) Unsubscribe(ch string) { f.record("unsub", ch) }

func (f *fakeRelay) Confirmed(string, relay.Ticket) bool {
	select {
	case <-f.release:
		return true
	default:
		return false
	}
}

func (f *fakeRelay) AwaitConfirmed(ctx context.Context, ch string, t relay.Ticket) error {
	dl, ok := ctx.Deadline()
	f.mu.Lock()
	f.waits = append(f.waits, ok && !time.Now().Before(dl))
	f.mu.Unlock()
	if ok && !time.Now().Before(dl) { // as the cluster: a deadline past is the timeout
		select {
		case <-f.release:
			return nil
		default:
			return errors.New("fake deadline")
		}
	}
	select {
	case <-f.release:
		return nil
	case <-f.timeout:
		return errors.New("fake timeout")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeRelay) setStanding(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.standing = err
}

func (f *fakeRelay) Standing() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.standing
}

func (f *fakeRelay) Ready(context.Context) error    { return nil }
func (f *fakeRelay) Shutdown(context.Context) error { return nil }

func (f *fakeRelay) snapshot() (pub, interest []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.published...), append([]string(nil), f.interest...)
}

func TestRelayCalls(t *testing.T) {
	relay := newFakeRelay()
	cfg := DefaultConfig()
	cfg.Cluster = relay
	h, url := testHub(t, cfg)
	a, b := dial(t, url), dial(t, url)

	a.SendText(`{"op":"sub","ch":"x","id":1}`)
	b.SendText(`{"op":"sub","ch":"x","id":1}`)
	// Channels is 1 from the first join on: wait for both subscribes to
	// have asked the relay (the first check passed alone 1 run in 6).
	waitFor(t, 5*time.Second, "both subscribed", func() bool {
		_, interest := relay.snapshot()
		return h.Stats().Channels == 1 && len(interest) >= 2
	})
	_, interest := relay.snapshot()
	if strings.Join(interest, ",") != "sub x,sub x" {
		t.Fatalf("interest calls %v, want one sub per subscriber", interest)
	}
	close(relay.release)
	a.ReadJSON()
	b.ReadJSON()

	relay.recv.Deliver("x", []byte(`"from afar"`), "", nil)
	for _, c := range []*client{a, b} {
		if m := c.ReadJSON(); m["data"] != "from afar" {
			t.Fatalf("remote delivery: %v", m)
		}
	}
	pub, _ := relay.snapshot()
	if len(pub) != 0 {
		t.Fatalf("a remote delivery was forwarded again: %v", pub)
	}
	a.SendText(`{"op":"pub","ch":"x","data":[1, 2]}`)
	a.ReadJSON()
	waitFor(t, 5*time.Second, "relay publish", func() bool { p, _ := relay.snapshot(); return len(p) == 1 })
	if pub, _ := relay.snapshot(); pub[0] != "x=[1, 2]" {
		t.Fatalf("relay got %v", pub)
	}
	a.MustAck(`{"op":"unsub","ch":"x","id":2}`)
	b.Conn.Close()
	waitFor(t, 5*time.Second, "interest off", func() bool {
		_, in := relay.snapshot()
		return strings.Join(in, ",") == "sub x,sub x,unsub x,unsub x"
	})
}

func TestOriginCheck(t *testing.T) {
	cases := []struct {
		allowed []string
		origin  string
		ok      bool
	}{
		{nil, "", true},
		{nil, "http://localhost:3000", true},
		{nil, "http://127.0.0.1:9", true},
		{nil, "http://evil.example", false},
		{nil, "SELF", true},
		{[]string{"https://app.example"}, "https://app.example", true},
		{[]string{"https://app.example"}, "http://localhost:3000", false},
		{[]string{"https://app.example"}, "SELF", true}, // the node's own pages, whatever the list
		{[]string{"*"}, "http://evil.example", true},
		{nil, "null", false},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		cfg.AllowedOrigins = tc.allowed
		h, url := testHub(t, cfg)
		hdr := http.Header{}
		origin := tc.origin
		if origin == "SELF" {
			origin = "http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws")
		}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		status := wstest.UpgradeStatus(t, url, hdr)
		if (status == http.StatusSwitchingProtocols) != tc.ok {
			t.Errorf("allowed=%v origin=%q: status %d", tc.allowed, origin, status)
		}
		if !tc.ok && status != http.StatusForbidden {
			t.Errorf("refused with %d, want 403", status)
		}
		_ = h
	}
}

func TestAuthorizeHook(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Authenticator = AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		if r.URL.Query().Get("user") == "" {
			return Identity{}, &Error{Code: http.StatusUnauthorized, Reason: "who are you?"}
		}
		return Identity{User: r.URL.Query().Get("user")}, nil
	})
	var seen string
	var mu sync.Mutex
	cfg.AuthorizeSubscribe = func(c *Client, ch string) error {
		mu.Lock()
		seen = c.User()
		mu.Unlock()
		return nil
	}
	_, url := testHub(t, cfg)
	if status := wstest.UpgradeStatus(t, url, nil); status != http.StatusUnauthorized {
		t.Fatalf("anonymous upgrade: %d", status)
	}
	c := dial(t, url+"?user=alice")
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	mu.Lock()
	defer mu.Unlock()
	if seen != "alice" {
		t.Fatalf("hook saw user %q", seen)
	}
}

func TestStatsJSON(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	b, err := json.Marshal(h.Stats())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"sessions":1`) || !strings.Contains(string(b), `"channels":1`) {
		t.Fatalf("stats: %s", b)
	}
}

// TestRepeatedSubWaitsForTheCluster: a second sub of a channel whose first
// sub still waits for peers is not acked before the first: the ack
// promises the same thing.
func TestRepeatedSubWaitsForTheCluster(t *testing.T) {
	relay := newFakeRelay()
	cfg := DefaultConfig()
	cfg.Cluster = relay
	_, url := testHub(t, cfg)
	c := dial(t, url)
	c.SendText(`{"op":"sub","ch":"x","id":1}`)
	c.SendText(`{"op":"sub","ch":"x","id":2}`)
	c.SendText(`{"op":"unsub","ch":"other","id":3}`) // answered at once
	if m := c.ReadJSON(); m["id"] != 3.0 {
		t.Fatalf("first answer %v, want the unsub's ack (id 3): a sub was acked before the cluster confirmed", m)
	}
	close(relay.release)
	got := map[float64]bool{}
	for range 2 {
		got[c.ReadJSON()["id"].(float64)] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("acks after release: %v", got)
	}
}

// TestWaitingSubsAreCapped: a connection has at most MaxSubscriptions +
// maxExtraWaits subscribes waiting for a peer that does not answer; then
// err 429, and the refused sub's channel is subscribed anyway.
func TestWaitingSubsAreCapped(t *testing.T) {
	relay := newFakeRelay()
	cfg := DefaultConfig()
	cfg.Cluster = relay
	cfg.MaxSubscriptions = 4
	_, url := testHub(t, cfg)
	c := dial(t, url)
	limit := cfg.MaxSubscriptions + maxExtraWaits
	for i := range limit + 1 {
		c.SendText(fmt.Sprintf(`{"op":"sub","ch":"c%d","id":%d}`, i%cfg.MaxSubscriptions, i))
	}
	if m := c.ReadJSON(); m["code"] != 429.0 || m["id"] != float64(limit) || m["reason"] != "too many subscribes waiting for the cluster" {
		t.Fatalf("want 429 for sub %d, got %v", limit, m)
	}
	close(relay.release)
	for range limit {
		if m := c.ReadJSON(); m["op"] != "ack" {
			t.Fatalf("want ack, got %v", m)
		}
	}
	c.MustAck(`{"op":"sub","ch":"c0","id":99}`) // retry: subscribed, now acked
}

// TestTimedOutSubsDoNotStack: when one waiting subscribe times out, those
// that waited as long are settled at once (a deadline already past), not
// each after a timeout of its own; every one is acked and gets a gap.
func TestTimedOutSubsDoNotStack(t *testing.T) {
	relay := newFakeRelay()
	cfg := DefaultConfig()
	cfg.Cluster = relay
	_, url := testHub(t, cfg)
	c := dial(t, url)
	const n = 50
	for i := range n {
		c.SendText(fmt.Sprintf(`{"op":"sub","ch":"c%d","id":%d}`, i, i))
	}
	c.MustAck(`{"op":"unsub","ch":"other","id":999}`) // every sub is queued
	close(relay.timeout)
	acks, gaps := 0, 0
	for acks < n || gaps < n {
		switch m := c.ReadJSON(); m["op"] {
		case "ack":
			acks++
		case "gap":
			gaps++
		default:
			t.Fatalf("got %v", m)
		}
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	waited := 0
	for _, past := range relay.waits {
		if !past {
			waited++
		}
	}
	if waited > 2 || len(relay.waits) != n {
		t.Fatalf("%d of %d waits ran their own timeout, want at most 2 (the first, and the first after it began)", waited, len(relay.waits))
	}
}
