package hub

import (
	"fmt"
	"strings"
	"testing"
)

// subStartPos subscribes c to ch and returns the position its ack carries
// ("" when it carries none).
func subStartPos(t *testing.T, c *client, ch string, id int) string {
	t.Helper()
	m := c.RoundTrip(fmt.Sprintf(`{"op":"sub","ch":%q,"id":%d}`, ch, id))
	if m["op"] != "ack" || m["id"] != float64(id) {
		t.Fatalf("sub %s: %v", ch, m)
	}
	pos, _ := m["pos"].(string)
	return pos
}

// resumeFrom subscribes a new client to ch with since and returns the
// data of the messages it recovered, and whether the ack said recovered.
func resumeFrom(t *testing.T, url, ch, since string) ([]string, bool) {
	t.Helper()
	c := dial(t, url)
	c.SendText(fmt.Sprintf(`{"op":"sub","ch":%q,"id":1,"since":%q}`, ch, since))
	var got []string
	for {
		m := c.ReadJSON()
		switch m["op"] {
		case "msg":
			got = append(got, fmt.Sprint(m["data"]))
		case "ack":
			return got, m["recovered"] == true
		default:
			t.Fatalf("resuming %s: %v", ch, m)
		}
	}
}

// A subscriber that got no message before its connection dropped resumes
// from the position its sub's ack carried, and recovers what was
// published meanwhile, instead of a gap. A channel without history has
// no position to give.
func TestSubAckCarriesStartPosition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Security.Namespaces = map[string]Namespace{"hist": {History: 100}}
	h, url := testHub(t, cfg)
	c := dial(t, url)
	if pos := subStartPos(t, c, "plain", 1); pos != "" {
		t.Fatalf("sub on a channel without history acked with pos %q", pos)
	}
	publishN(t, h, "hist:a", 1, 3) // before the subscription: not its business
	pos := subStartPos(t, c, "hist:a", 2)
	if !strings.HasPrefix(pos, "p1.") {
		t.Fatalf("sub on a channel with history acked with pos %q, want a position", pos)
	}
	c.Conn.Close()
	publishN(t, h, "hist:a", 4, 6)
	got, recovered := resumeFrom(t, url, "hist:a", pos)
	if !recovered || strings.Join(got, ",") != "4,5,6" {
		t.Fatalf("resumed from the ack's position: got %v, recovered %v; want 4,5,6 and true", got, recovered)
	}
}

// The same across nodes: subscribed on one node, published on another,
// resumed on a third, which never delivered the channel.
func TestSubAckStartPositionAcrossNodes(t *testing.T) {
	nodes := startHistoryHubs(t, 3, 1000)
	var urls []string
	for _, n := range nodes {
		srv := newTestServer(n.Hub)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.wsURL)
	}
	const ch = "hist:x"
	c := dial(t, urls[0])
	pos := subStartPos(t, c, ch, 1)
	c.Conn.Close()
	publishN(t, nodes[1].Hub, ch, 1, 5)
	got, recovered := resumeFrom(t, urls[2], ch, pos)
	if !recovered || strings.Join(got, ",") != "1,2,3,4,5" {
		t.Fatalf("resumed on h2 from the ack's position on h0: got %v, recovered %v; want 1..5 and true", got, recovered)
	}
}
