package hub

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestHelloFirst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeName = "node-a"
	_, url := testHub(t, cfg)
	c := dial(t, url)
	if c.Hello["node"] != "node-a" {
		t.Fatalf("hello node = %v", c.Hello["node"])
	}
	if c.Hello["max_message"] != float64(64<<10) {
		t.Fatalf("hello max_message = %v, want the default 65536", c.Hello["max_message"])
	}
	id, _ := c.Hello["client"].(string)
	if id == "" {
		t.Fatalf("hello has no client id: %v", c.Hello)
	}
	if d := dial(t, url); d.Hello["client"] == id {
		t.Fatalf("two clients got the same id %q", id)
	}
}

func TestSubPubUnsub(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	if m := c.RoundTrip(`{"op":"sub","ch":"room","id":1}`); m["op"] != "ack" || m["id"] != 1.0 {
		t.Fatalf("sub: %v", m)
	}
	c.SendText(`{"op":"pub","ch":"room","data":{"text":"hi"},"id":2}`)
	// The publisher is subscribed, so it receives its own message; the
	// ack and the msg may come in either order.
	got := map[string]map[string]any{}
	for range 2 {
		m := c.ReadJSON()
		got[m["op"].(string)] = m
	}
	if got["ack"]["id"] != 2.0 {
		t.Fatalf("pub ack: %v", got)
	}
	if msg := got["msg"]; msg["ch"] != "room" || msg["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("msg: %v", got)
	}
	c.MustAck(`{"op":"unsub","ch":"room","id":3}`)
	c.MustAck(`{"op":"pub","ch":"room","data":1,"id":4}`)
	// Nothing arrives for room any more: the next frame is the next ack.
	c.MustAck(`{"op":"sub","ch":"other","id":5}`)
}

// TestPing: a ping is acked and changes nothing, so a client that cannot
// see WebSocket pings (a browser) can tell a live connection from a dead
// one; without an id it is silent, as every request.
func TestPing(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	if m := c.RoundTrip(`{"op":"ping","id":7}`); m["op"] != "ack" || m["id"] != 7.0 || len(m) != 2 {
		t.Fatalf("ping: %v", m)
	}
	c.SendText(`{"op":"ping"}`)
	c.SendText(`{"op":"ping","ch":"ignored","id":8}`)
	// The next frame is the second ping's ack: the first had no id.
	if m := c.ReadJSON(); m["op"] != "ack" || m["id"] != 8.0 {
		t.Fatalf("want the ack of id 8, got %v", m)
	}
}

func TestNoAckWithoutID(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	c.SendText(`{"op":"sub","ch":"a"}`)
	c.SendText(`{"op":"pub","ch":"a","data":"x"}`)
	// The first frame back is the delivery: neither op had an id to ack.
	if m := c.ReadJSON(); m["op"] != "msg" || m["data"] != "x" {
		t.Fatalf("want msg, got %v", m)
	}
}

func TestDataPassesByteExact(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	c.MustAck(`{"op":"sub","ch":"exact","id":1}`)
	cases := []string{
		`{ "b" : [1, 2.50, -0, 1e+10] ,"a":"\u00e9\n"}`,
		`"plain"`, `null`, `true`, `12345678901234567890123`, `[]`, `"\ud83d\ude00 é"`,
	}
	for _, data := range cases {
		c.SendText(`{"op":"pub","ch":"exact","data":` + data + `}`)
		want := `{"op":"msg","ch":"exact","data":` + data + `}`
		if got := string(c.ReadText()); got != want {
			t.Errorf("data changed:\n got %s\nwant %s", got, want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	cases := []struct {
		name, frame string
		wantID      bool
	}{
		{"not json", `{"op":"sub",`, false},
		{"not an object", `["sub"]`, false},
		{"no op", `{"ch":"a","id":1}`, true},
		{"unknown op", `{"op":"subscribe","ch":"a","id":1}`, true},
		{"op not string", `{"op":1,"ch":"a","id":1}`, true},
		{"missing channel", `{"op":"sub","id":1}`, true},
		{"empty channel", `{"op":"sub","ch":"","id":1}`, true},
		{"channel with space", `{"op":"sub","ch":"a b","id":1}`, true},
		{"channel with control", `{"op":"sub","ch":"a\u0007","id":1}`, true},
		{"channel not string", `{"op":"sub","ch":7,"id":1}`, true},
		{"channel too long", `{"op":"sub","ch":"` + strings.Repeat("x", 256) + `","id":1}`, true},
		{"negative id", `{"op":"sub","ch":"a","id":-1}`, false},
		{"fractional id", `{"op":"sub","ch":"a","id":1.5}`, false},
		{"pub without data", `{"op":"pub","ch":"a","id":1}`, true},
		{"duplicate op", `{"op":"sub","op":"pub","ch":"a","id":1}`, true},
		// The id comes after the bad field (json.Marshal of a map sorts
		// keys like this): it is still read and echoed.
		{"id after a bad channel", `{"ch":7,"data":1,"id":3,"op":"pub"}`, true},
		{"id after a bad op", `{"ch":"a","op":[1],"id":3}`, true},
		{"id after a duplicate", `{"ch":"a","ch":"b","id":3,"op":"sub"}`, true},
		{"id after an unknown op", `{"ch":"a","id":3,"op":"subscribe"}`, true},
		{"id before a bad op", `{"id":3,"op":{}}`, true},
		{"id after no op", `{"ch":"a","data":{},"id":3}`, true},
		{"id unreadable after a bad channel", `{"ch":7,"id":"3","op":"sub"}`, false},
		{"two values", `{"op":"sub","ch":"a"} {}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.T = t
			m := c.RoundTrip(tc.frame)
			if m["op"] != "err" || m["code"] != 400.0 || m["reason"] == "" {
				t.Fatalf("want err 400, got %v", m)
			}
			if _, has := m["id"]; has != tc.wantID {
				t.Fatalf("id echoed = %v, want %v: %v", has, tc.wantID, m)
			}
		})
	}
	// The connection survives all of it.
	c.T = t
	c.MustAck(`{"op":"sub","ch":` + `"` + strings.Repeat("y", 255) + `","id":9}`)
	// U+FFFD, escaped or not, and a lone surrogate, which decodes to it,
	// are refused with a reason that says so: such names would alias.
	for i, ch := range []string{`a\ufffd`, "b\uFFFD", `c\ud800`, `d\udfff`} {
		m := c.RoundTrip(fmt.Sprintf(`{"op":"sub","ch":"%s","id":%d}`, ch, 10+i))
		if m["op"] != "err" || m["code"] != 400.0 || !strings.Contains(m["reason"].(string), "U+FFFD") {
			t.Errorf("sub %s: %v, want err 400 naming U+FFFD", ch, m)
		}
	}
}

func TestHooksRefuseWith403(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AuthorizeSubscribe = func(c *Client, ch string) error {
		if strings.HasPrefix(ch, "secret") {
			return errors.New("not your channel")
		}
		return nil
	}
	cfg.AuthorizePublish = func(c *Client, ch string, data []byte) error {
		if ch == "readonly" {
			return errors.New("read only")
		}
		return nil
	}
	_, url := testHub(t, cfg)
	c := dial(t, url)
	if m := c.RoundTrip(`{"op":"sub","ch":"secret:x","id":1}`); m["code"] != 403.0 || m["reason"] != "not your channel" {
		t.Fatalf("sub: %v", m)
	}
	if m := c.RoundTrip(`{"op":"pub","ch":"readonly","data":1,"id":2}`); m["code"] != 403.0 {
		t.Fatalf("pub: %v", m)
	}
	c.MustAck(`{"op":"sub","ch":"readonly","id":3}`)
}

// The reason says the limit: a client cannot see the node's --max-data.
func TestTooLargeDataIs413(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDataSize = 100
	_, url := testHub(t, cfg)
	c := dial(t, url)
	m := c.RoundTrip(`{"op":"pub","ch":"a","data":"` + strings.Repeat("x", 100) + `","id":1}`)
	if m["code"] != 413.0 || m["id"] != 1.0 || m["reason"] != "data is larger than the limit: 102 bytes, at most 100" {
		t.Fatalf("want 413 naming the limit, got %v", m)
	}
	c.MustAck(`{"op":"pub","ch":"a","data":"` + strings.Repeat("x", 98) + `","id":2}`)
}

func TestSubscriptionLimitIs429(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSubscriptions = 3
	_, url := testHub(t, cfg)
	c := dial(t, url)
	for i := range 3 {
		c.MustAck(fmt.Sprintf(`{"op":"sub","ch":"c%d","id":%d}`, i, i))
	}
	if m := c.RoundTrip(`{"op":"sub","ch":"c3","id":3}`); m["code"] != 429.0 {
		t.Fatalf("want 429, got %v", m)
	}
	c.MustAck(`{"op":"sub","ch":"c0","id":4}`) // already subscribed: no new slot needed
	c.MustAck(`{"op":"unsub","ch":"c0","id":5}`)
	c.MustAck(`{"op":"sub","ch":"c3","id":6}`)
}

func TestCloseCodes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Transport.MaxMessageSize = 1024
	_, url := testHub(t, cfg)
	cases := []struct {
		name  string
		frame ws.Frame
		code  ws.StatusCode
	}{
		{"invalid utf-8", ws.NewTextFrame([]byte{'"', 0xff, 0xfe, '"'}), 1007},
		{"too big", ws.NewTextFrame([]byte(strings.Repeat("x", 1025))), 1009},
		{"binary", ws.NewBinaryFrame([]byte(`{"op":"sub"}`)), 1003},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, url)
			c.SendFrame(tc.frame)
			if code, _ := c.ExpectClose(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			c.ExpectEOF()
		})
	}
	t.Run("unmasked", func(t *testing.T) {
		c := dial(t, url)
		if err := ws.WriteFrame(c.Conn, ws.NewTextFrame([]byte(`{}`))); err != nil {
			t.Fatal(err)
		}
		if code, _ := c.ExpectClose(); code != 1002 {
			t.Fatalf("close code %d, want 1002", code)
		}
	})
}

func TestOneClientThousandChannels(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	const n = 1000
	for i := range n {
		c.SendText(fmt.Sprintf(`{"op":"sub","ch":"ch-%d","id":%d}`, i, i))
	}
	for i := range n {
		if m := c.ReadJSON(); m["op"] != "ack" || m["id"] != float64(i) {
			t.Fatalf("sub %d: %v", i, m)
		}
	}
	if got := h.Stats().Channels; got != n {
		t.Fatalf("hub has %d channels, want %d", got, n)
	}
	for i := range n {
		c.SendText(fmt.Sprintf(`{"op":"pub","ch":"ch-%d","data":%d}`, i, i))
	}
	for i := range n {
		m := c.ReadJSON()
		if m["op"] != "msg" || m["ch"] != fmt.Sprintf("ch-%d", i) || m["data"] != float64(i) {
			t.Fatalf("delivery %d: %v", i, m)
		}
	}
	c.Conn.Close()
	waitFor(t, 5*time.Second, "channels released", func() bool { return h.Stats().Channels == 0 })
}
