package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshcast/meshcast/transport"
)

// eventLog records hook calls in order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func userHub(t *testing.T, cfg Config) (*Hub, string) {
	t.Helper()
	cfg.Authenticator = AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		return Identity{User: r.URL.Query().Get("user")}, nil
	})
	return testHub(t, cfg)
}

// TestEventsInOrder: connect first, a subscribe and unsubscribe per
// request, an unsubscribe for each channel still held, disconnect last
// with the close reason.
func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	var log eventLog
	cfg := DefaultConfig()
	cfg.OnConnect = func(c *Client) { log.add("connect %s", c.User()) }
	cfg.OnSubscribe = func(c *Client, ch string) { log.add("sub %s", ch) }
	cfg.OnUnsubscribe = func(c *Client, ch string) { log.add("unsub %s", ch) }
	cfg.OnDisconnect = func(c *Client, r *transport.CloseError) { log.add("disconnect %d", r.Code) }
	_, url := userHub(t, cfg)
	c := dial(t, url+"?user=ann")
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	c.MustAck(`{"op":"sub","ch":"a","id":2}`) // already in it: no event
	c.MustAck(`{"op":"sub","ch":"b","id":3}`)
	c.MustAck(`{"op":"unsub","ch":"a","id":4}`)
	c.Conn.Close()
	want := []string{"connect ann", "sub a", "sub b", "unsub a", "unsub b", "disconnect 1006"}
	waitFor(t, 5*time.Second, "every event", func() bool { return len(log.list()) == len(want) })
	if got := log.list(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestServerSideClient: hooks act on the connection through *Client: a
// server-side subscribe (no permission check), Send to this client only,
// and Disconnect with 4003.
func TestServerSideClient(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.AuthorizeSubscribe = func(c *Client, ch string) error { return errors.New("clients may not choose") }
	clients := make(chan *Client, 2)
	cfg.OnConnect = func(c *Client) {
		if err := c.Subscribe(context.Background(), "room:"+c.User()); err != nil {
			t.Errorf("server-side subscribe: %v", err)
		}
		clients <- c
	}
	h, url := userHub(t, cfg)
	ann, bob := dial(t, url+"?user=ann"), dial(t, url+"?user=bob")
	annC, bobC := <-clients, <-clients
	if annC.User() != "ann" {
		annC, bobC = bobC, annC
	}
	if got := annC.Channels(); !slices.Equal(got, []string{"room:ann"}) {
		t.Fatalf("ann's channels %v", got)
	}
	if m := ann.RoundTrip(`{"op":"sub","ch":"room:bob","id":1}`); m["code"] != 403.0 {
		t.Fatalf("the hook still decides client requests: %v", m)
	}
	h.Publish(context.Background(), "room:ann", []byte(`"for ann"`))
	if m := ann.ReadJSON(); m["data"] != "for ann" {
		t.Fatalf("ann got %v", m)
	}
	if err := bobC.Send("direct", []byte(`{"only":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	if m := bob.ReadJSON(); m["op"] != "msg" || m["ch"] != "direct" {
		t.Fatalf("bob got %v", m)
	}
	if err := bobC.Send("direct", []byte(`not json`)); !errors.Is(err, ErrBadData) {
		t.Fatalf("Send of bad data: %v", err)
	}
	annC.Disconnect("bye")
	if code, reason := ann.ExpectClose(); code != CloseDisconnected || reason != "bye" {
		t.Fatalf("close %d %q", code, reason)
	}
	waitFor(t, 5*time.Second, "ann gone", func() bool { return h.Stats().Sessions == 1 })
	if err := annC.Subscribe(context.Background(), "late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe on a closed client: %v", err)
	}
}

// TestExceptLeavesOutOneClient: Publish with Except reaches every
// subscriber but that client.
func TestExceptLeavesOutOneClient(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 2)
	cfg := DefaultConfig()
	cfg.OnConnect = func(c *Client) { ids <- c.ID() }
	h, url := userHub(t, cfg)
	a := dial(t, url+"?user=a")
	idA := <-ids
	b := dial(t, url+"?user=b")
	<-ids
	for _, c := range []*client{a, b} {
		c.MustAck(`{"op":"sub","ch":"x","id":1}`)
	}
	h.Publish(context.Background(), "x", []byte(`1`), Except(idA))
	h.Publish(context.Background(), "x", []byte(`2`))
	if m := b.ReadJSON(); m["data"] != 1.0 {
		t.Fatalf("b got %v, want the first publish", m)
	}
	if m := a.ReadJSON(); m["data"] != 2.0 {
		t.Fatalf("a got %v: the publish that excepted it reached it", m)
	}
}

// TestHookErrorChoosesCode: a *hub.Error from a hook sets the err code.
func TestHookErrorChoosesCode(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.AuthorizePublish = func(c *Client, ch string, data []byte) error {
		return &Error{Code: CodeRateLimited, Reason: "slow down"}
	}
	_, url := testHub(t, cfg)
	c := dial(t, url)
	if m := c.RoundTrip(`{"op":"pub","ch":"x","data":1,"id":7}`); m["code"] != 429.0 || m["reason"] != "slow down" || m["id"] != 7.0 {
		t.Fatalf("got %v", m)
	}
}

// TestInProcessSubscribe: Hub.Subscribe sees what clients and Go code
// publish, in order, until closed.
func TestInProcessSubscribe(t *testing.T) {
	t.Parallel()
	h, url := testHub(t, DefaultConfig())
	got := make(chan Message, 10)
	sub, err := h.Subscribe(context.Background(), "feed", func(m Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	dial(t, url).MustAck(`{"op":"pub","ch":"feed","data":{"n":1},"id":1}`)
	h.Publish(context.Background(), "feed", []byte(`{"n":2}`))
	for _, want := range []string{`{"n":1}`, `{"n":2}`} {
		if m := <-got; m.Channel != "feed" || string(m.Data) != want || m.Gap {
			t.Fatalf("got %+v, want %s", m, want)
		}
	}
	sub.Close()
	sub.Close() // idempotent
	h.Publish(context.Background(), "feed", []byte(`3`))
	if h.Stats().Channels != 0 {
		t.Fatal("a closed subscription still holds its channel")
	}
	if _, err := h.Subscribe(context.Background(), "$sys:x", func(Message) {}); !errors.Is(err, ErrReserved) {
		t.Fatalf("reserved channel: %v", err)
	}
}

// TestInProcessSubscriberTooSlowGetsGap: a subscriber that cannot keep up
// loses messages past its queue and is told with a Gap, without slowing
// the publisher.
func TestInProcessSubscriberTooSlowGetsGap(t *testing.T) {
	t.Parallel()
	h, _ := testHub(t, DefaultConfig())
	release := make(chan struct{})
	var holding atomic.Bool
	var mu sync.Mutex
	var seen []Message
	sub, err := h.Subscribe(context.Background(), "flood", func(m Message) {
		holding.Store(true)
		<-release
		mu.Lock()
		seen = append(seen, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	publish := func(data string) {
		t.Helper()
		if err := h.Publish(context.Background(), "flood", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	// fn holds the first message before the flood, so the flood fills the
	// queue behind it: were the delivery goroutine to take its first batch
	// only once the queue had filled, the queue could be full again when
	// "last" is published, and "last" dropped (rightly, with a Gap).
	publish("0")
	waitFor(t, 10*time.Second, "fn to hold the first message", holding.Load)
	n := 1 + maxLocalQueue + 100 // one in fn's hands, a full queue, and more
	for i := 1; i < n; i++ {
		publish(fmt.Sprint(i))
	}
	close(release)
	waitFor(t, 10*time.Second, "the gap", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(seen, func(m Message) bool { return m.Gap })
	})
	publish(`"last"`)
	waitFor(t, 10*time.Second, "the last message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0 && string(seen[len(seen)-1].Data) == `"last"`
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) >= n {
		t.Fatalf("%d messages seen of %d published: nothing was dropped?", len(seen), n)
	}
}

// TestConfigRejectsNonsense: negative limits are an error, not a default.
func TestConfigRejectsNonsense(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{MaxSubscriptions: -1}, {MaxDataSize: -5}, {Security: SecurityConfig{PublishRate: -1}}} {
		if h, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			if h != nil {
				h.Shutdown(context.Background())
			}
			t.Errorf("%+v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if h, err := New(Config{}); err != nil || !strings.HasPrefix(h.cfg.NodeName, "meshcast") {
		t.Fatalf("zero config: %v", err)
	} else {
		h.Shutdown(context.Background())
	}
}

// TestEmbedderMistakesAreErrors: mistakes an embedder can make get an
// error where they are made, not a panic later on a hub goroutine or a
// subscription that outlives the caller's cancelled context.
func TestEmbedderMistakesAreErrors(t *testing.T) {
	var nilAuth AuthenticatorFunc
	if _, err := New(Config{Authenticator: nilAuth}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with a nil AuthenticatorFunc: %v, want ErrInvalidConfig", err)
	}
	// ErrInvalidConfig wraps every configuration error, the transport's
	// too (which stays reachable with errors.Is).
	if _, err := New(Config{Transport: transport.Config{MaxMessageSize: -1}}); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("New with a negative Transport.MaxMessageSize: %v, want ErrInvalidConfig and transport.ErrInvalidConfig", err)
	}
	h, _ := testHub(t, Config{})
	if err := h.UpdateSecurity(Live{Authenticator: nilAuth}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("UpdateSecurity with a nil AuthenticatorFunc: %v", err)
	}
	if s, err := h.Subscribe(context.Background(), "x", nil); err == nil {
		s.Close()
		t.Error("Subscribe with a nil func accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := h.Subscribe(ctx, "x", func(Message) {}); !errors.Is(err, context.Canceled) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Subscribe with a cancelled context: %v, want context.Canceled", err)
	}
}
