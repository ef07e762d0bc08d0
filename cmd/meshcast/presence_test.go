package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/transport/wstest"
)

func TestPresenceNamespaceOptions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "meshcast.yaml")
	os.WriteFile(file, []byte("namespaces:\n  lobby: {presence: on, join_leave: on}\n  quiet: {presence: true, join_leave: off}\n"), 0o600)
	cfg := secureConfig(t, "--config", file, "--namespace", "room:subscribe=authenticated,presence=on,join_leave=on")
	rules, err := cfg.security.namespaceRules()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]hub.Namespace{
		"lobby": {Presence: true, JoinLeave: true},
		"quiet": {Presence: true},
		"room":  {Subscribe: hub.SubscribeAuthenticated, Presence: true, JoinLeave: true},
	}
	got, _ := json.Marshal(rules)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Fatalf("rules\n got %s\nwant %s", got, exp)
	}

	for _, tc := range []struct{ flag, yaml, want string }{
		{"room:presence=maybe", "  room: {presence: maybe}", `presence="maybe": want on or off`},
		{"room:join_leave=on", "  room: {join_leave: on}", `namespace "room": join_leave needs presence`},
		// The hub's own checks, reported where the namespace is written.
		{"room:history=20000", "  room: {history: 20000}", `namespace "room": history 20000 is not from 0 to 10000`},
		{"room:history_ttl=1h", "  room: {history_ttl: 1h}", `namespace "room": history_ttl without history`},
		{"room:presense=on", "  room: {presense: on}", `unknown key "presense" (want subscribe, publish, origins, history, history_ttl, presence or join_leave)`},
	} {
		_, err := parseConfig([]string{"--namespace", tc.flag}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--namespace %s: %v, want %q", tc.flag, err, tc.want)
		}
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("namespaces:\n"+tc.yaml+"\n"), 0o600)
		_, err = parseConfig([]string{"--config", bad}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.yaml:2") {
			t.Errorf("config %s: %v, want %q at line 2", tc.yaml, err, tc.want)
		}
	}
}

// presenceEvents sends a presence_stats request of ch and returns the
// join and leave events that came before its answer, and the answer's
// counts: what the node's view changed, in order, up to now.
func presenceEvents(t testing.TB, c *wstest.Client, ch string, id int) ([]string, string) {
	t.Helper()
	c.SendText(fmt.Sprintf(`{"op":"presence_stats","ch":%q,"id":%d}`, ch, id))
	var events []string
	for {
		m := c.ReadJSON()
		switch m["op"] {
		case "join", "leave":
			events = append(events, fmt.Sprintf("%s %s", m["op"], m["user"]))
		case "presence_stats":
			if m["id"] == float64(id) {
				return events, fmt.Sprintf("%v/%v", m["users"], m["clients"])
			}
		case "err":
			t.Fatalf("%v", m)
		}
	}
}

// TestPresenceAcrossNodes: three in-process nodes. A user's tabs on two
// nodes are one join and one leave for a subscriber on a third; a node
// that shuts down takes its users with it at once; the server API of any
// node answers for the whole cluster.
func TestPresenceAcrossNodes(t *testing.T) {
	nodes := startSecureCluster(t, 3, "--token-hmac-secret", testTokenSecret,
		"--namespace", "room:presence=on,join_leave=on", "--api-key", "k")
	as := func(n *node, user string) *wstest.Client {
		return wstest.Dial(t, n.wsURL()+"?token="+token(t, user))
	}
	w := as(nodes[2], "watcher")
	w.SendText(`{"op":"sub","ch":"room:x","id":1}`)
	id := 100
	var events []string
	await := func(what, counts string) {
		t.Helper()
		wstest.WaitFor(t, 10*time.Second, what, func() bool {
			id++
			evs, got := presenceEvents(t, w, "room:x", id)
			events = append(events, evs...)
			return got == counts
		})
	}
	await("the watcher", "1/1")
	tab0, tab1 := as(nodes[0], "alice"), as(nodes[1], "alice")
	tab0.SendText(`{"op":"sub","ch":"room:x","id":1}`)
	tab1.SendText(`{"op":"sub","ch":"room:x","id":1,"info":{"tab":2}}`)
	await("alice's two tabs", "2/3")
	bob := as(nodes[1], "bob")
	bob.SendText(`{"op":"sub","ch":"room:x","id":1}`)
	await("bob", "3/4")

	status, body := apiGet(t, nodes[0], "presence?ch=room:x", "k")
	want := `{"ch":"room:x","members":[{"user":"alice","clients":2,"info":{"tab":2}},{"user":"bob","clients":1},{"user":"watcher","clients":1}]}`
	if status != http.StatusOK || body != want {
		t.Fatalf("/api/presence on n0: %d %s\nwant %s", status, body, want)
	}
	if status, body := apiGet(t, nodes[1], "presence_stats?ch=room:x", "k"); status != 200 || body != `{"ch":"room:x","users":3,"clients":4}` {
		t.Fatalf("/api/presence_stats on n1: %d %s", status, body)
	}

	tab0.Conn.Close() // alice is still on n1
	stopped := time.Now()
	stopNode(t, nodes[1]) // a graceful leave: alice's last tab and bob go at once
	await("n1's users gone", "1/1")
	t.Logf("n1's users left %v after its shutdown began", time.Since(stopped).Round(time.Millisecond))
	if time.Since(stopped) > 5*time.Second {
		t.Fatalf("a graceful leave took %v to reach the other nodes' presence", time.Since(stopped))
	}
	got := slices.Clone(events[3:])
	slices.Sort(got)
	if head := []string{"join watcher", "join alice", "join bob"}; !slices.Equal(events[:3], head) ||
		!slices.Equal(got, []string{"leave alice", "leave bob"}) {
		t.Fatalf("events %v: want one join and one leave per user", events)
	}
}

func apiGet(t testing.TB, n *node, path, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.baseURL()+"/api/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
