package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/transport/wstest"
)

// histNodeConfig is testNodeConfig with history on the "hist" namespace,
// keeping window messages per channel.
func histNodeConfig(t testing.TB, window int, extra ...string) config {
	t.Helper()
	args := append([]string{
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--secret", testSecret, "--log-level", "warn", "--api-key", testAPIKey,
		"--namespace", fmt.Sprintf("hist:history=%d", window),
	}, extra...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const testAPIKey = "history-test-api-key-0123456789abcdef"

// histMsg is a msg frame of a channel with history.
type histMsg struct {
	Op        string          `json:"op"`
	Ch        string          `json:"ch"`
	Pos       string          `json:"pos"`
	Data      json.RawMessage `json:"data"`
	ID        *uint64         `json:"id"`
	Recovered *bool           `json:"recovered"`
	Code      int             `json:"code"`
	Reason    string          `json:"reason"`
	Msgs      []struct {
		Pos  string          `json:"pos"`
		Data json.RawMessage `json:"data"`
	} `json:"msgs"`
}

func readHist(t testing.TB, c *wstest.Client) histMsg {
	t.Helper()
	var m histMsg
	if err := json.Unmarshal(c.ReadText(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// resumeFrom subscribes c to ch since pos and returns the data of every
// msg before the ack, and the ack's recovered flag. Messages after the
// ack are left for the caller.
func resumeFrom(t testing.TB, c *wstest.Client, ch, pos string) (got []string, recovered bool) {
	t.Helper()
	c.SendText(fmt.Sprintf(`{"op":"sub","ch":%q,"id":7,"since":%q}`, ch, pos))
	for {
		m := readHist(t, c)
		switch m.Op {
		case "msg":
			if m.Pos == "" {
				t.Fatalf("msg on a channel with history without pos: %+v", m)
			}
			got = append(got, string(m.Data))
		case "ack":
			if m.Recovered == nil {
				t.Fatalf("ack of a sub with since without recovered: %+v", m)
			}
			return got, *m.Recovered
		default:
			t.Fatalf("while recovering: %+v", m)
		}
	}
}

func seq(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

// TestHistoryRecoverOnAnyNode: a subscriber that saw 1..5 and went away
// resumes from its position on each node of a 3-node cluster: it gets
// exactly 6..20, recovered:true, then the live stream.
func TestHistoryRecoverOnAnyNode(t *testing.T) {
	t.Parallel()
	nodes := startClusterWith(t, 3, func() config { return histNodeConfig(t, 100) })
	const ch = "hist:room"
	sub := wstest.Dial(t, nodes[0].wsURL())
	sub.MustAck(`{"op":"sub","ch":"hist:room","id":1}`)
	pub := wstest.Dial(t, nodes[1].wsURL())
	for i := 1; i <= 10; i++ {
		pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":%q,"data":%d,"id":%d}`, ch, i, i))
	}
	var pos5 string
	for i := 1; i <= 10; i++ {
		m := readHist(t, sub)
		if string(m.Data) != fmt.Sprint(i) || m.Pos == "" {
			t.Fatalf("live delivery %d: %+v", i, m)
		}
		if i == 5 {
			pos5 = m.Pos
		}
	}
	sub.Conn.Close()
	for i := 11; i <= 20; i++ {
		pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":%q,"data":%d,"id":%d}`, ch, i, i))
	}
	var resumed []*wstest.Client
	for i, nd := range nodes {
		c := wstest.Dial(t, nd.wsURL())
		got, recovered := resumeFrom(t, c, ch, pos5)
		if strings.Join(got, ",") != strings.Join(seq(6, 20), ",") || !recovered {
			t.Fatalf("node %d: recovered %v %v, want 6..20 and true", i, got, recovered)
		}
		resumed = append(resumed, c)
	}
	pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":%q,"data":21,"id":21}`, ch))
	for i, c := range resumed {
		if m := readHist(t, c); string(m.Data) != "21" {
			t.Fatalf("node %d: live after recovery %+v", i, m)
		}
	}
}

// TestHistoryRecoveryRacingPublishes: a publisher keeps publishing while
// subscribers resume on other nodes: each sees every number after its
// position exactly once, in order, across the recovery and the live
// stream.
func TestHistoryRecoveryRacingPublishes(t *testing.T) {
	t.Parallel()
	nodes := startClusterWith(t, 3, func() config { return histNodeConfig(t, 10000) })
	const ch, total = "hist:race", 3000
	first := wstest.Dial(t, nodes[0].wsURL())
	first.MustAck(`{"op":"sub","ch":"hist:race","id":1}`)
	pub := wstest.Dial(t, nodes[1].wsURL())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= total; i++ {
			if pub.WriteText(fmt.Sprintf(`{"op":"pub","ch":%q,"data":%d}`, ch, i)) != nil {
				return
			}
			if i%100 == 0 {
				// Pace it so the recoveries below run while it publishes.
				pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":"hist:pace","data":0,"id":%d}`, i))
			}
		}
	}()
	var pos string
	for i := 1; i <= 200; i++ {
		m := readHist(t, first)
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("live %d: %+v", i, m)
		}
		pos = m.Pos
	}
	first.Conn.Close()
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := wstest.Dial(t, nd.wsURL())
			c.SendText(fmt.Sprintf(`{"op":"sub","ch":%q,"id":7,"since":%q}`, ch, pos))
			next, acked := 201, false
			for next <= total || !acked {
				m := readHist(t, c)
				switch m.Op {
				case "ack":
					if m.Recovered == nil || !*m.Recovered {
						t.Errorf("node %d: ack %+v", i, m)
					}
					acked = true
				case "msg":
					if string(m.Data) != fmt.Sprint(next) {
						t.Errorf("node %d: got %s, want %d", i, m.Data, next)
						return
					}
					next++
				default:
					t.Errorf("node %d: %+v", i, m)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-done
}

// TestHistoryWindowExceeded: a position older than the window gets what
// is left and recovered:false.
func TestHistoryWindowExceeded(t *testing.T) {
	t.Parallel()
	nodes := startClusterWith(t, 2, func() config { return histNodeConfig(t, 5) })
	sub := wstest.Dial(t, nodes[0].wsURL())
	sub.MustAck(`{"op":"sub","ch":"hist:small","id":1}`)
	pub := wstest.Dial(t, nodes[1].wsURL())
	pub.MustAck(`{"op":"pub","ch":"hist:small","data":1,"id":1}`)
	pos1 := readHist(t, sub).Pos
	sub.Conn.Close()
	for i := 2; i <= 20; i++ {
		pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":"hist:small","data":%d,"id":%d}`, i, i))
	}
	for i, nd := range nodes {
		got, recovered := resumeFrom(t, wstest.Dial(t, nd.wsURL()), "hist:small", pos1)
		if recovered || strings.Join(got, ",") != strings.Join(seq(16, 20), ",") {
			t.Fatalf("node %d: got %v recovered %v, want 16..20 and false", i, got, recovered)
		}
	}
}

// TestHistoryBadSince: garbage, a position of another channel and since
// on a channel without history get err 400; a position no node knows (of
// another cluster, or from the future) gets nothing and recovered:false.
func TestHistoryBadSince(t *testing.T) {
	t.Parallel()
	nodes := startClusterWith(t, 2, func() config { return histNodeConfig(t, 100) })
	pub := wstest.Dial(t, nodes[1].wsURL())
	pub.MustAck(`{"op":"pub","ch":"hist:b","data":1,"id":1}`)
	c := wstest.Dial(t, nodes[0].wsURL())
	other := history.EncodePos(history.Place("hist:other"), history.Pos{Marks: history.Frontier{{Stream: 3, Seq: 1}}})
	for _, req := range []string{
		`{"op":"sub","ch":"hist:b","id":2,"since":"garbage"}`,
		`{"op":"sub","ch":"hist:b","id":2,"since":"p1.!!!"}`,
		`{"op":"sub","ch":"hist:b","id":2,"since":` + fmt.Sprintf("%q", other) + `}`,
		`{"op":"sub","ch":"plain","id":2,"since":` + fmt.Sprintf("%q", other) + `}`,
		`{"op":"sub","ch":"hist:b","id":2,"since":5}`,
	} {
		m := readHist(t, roundTrip(c, req))
		if m.Op != "err" || m.Code != 400 || m.ID == nil || *m.ID != 2 {
			t.Fatalf("%s: %+v", req, m)
		}
	}
	// Another cluster's: streams nobody here knows. What is here may be
	// sent (by time), but it cannot be called complete.
	foreign := history.Pos{Marks: history.Frontier{{Stream: 12345, Seq: 9}}, Time: time.Now().UnixMilli()}
	got, recovered := resumeFrom(t, wstest.Dial(t, nodes[0].wsURL()), "hist:b", history.EncodePos(history.Place("hist:b"), foreign))
	if recovered || len(got) > 1 {
		t.Fatalf("another cluster's position: got %v recovered %v", got, recovered)
	}
	// The future's: nothing here is after it.
	future := history.Pos{Time: time.Now().Add(time.Hour).UnixMilli()}
	got, _ = resumeFrom(t, wstest.Dial(t, nodes[0].wsURL()), "hist:b", history.EncodePos(history.Place("hist:b"), future))
	if len(got) != 0 {
		t.Fatalf("a position from the future replayed %v", got)
	}
}

func roundTrip(c *wstest.Client, req string) *wstest.Client {
	c.SendText(req)
	return c
}

// TestHistoryRead: the history op and GET /api/history return the newest
// messages oldest first, from any node, and their positions resume.
func TestHistoryRead(t *testing.T) {
	t.Parallel()
	nodes := startClusterWith(t, 3, func() config { return histNodeConfig(t, 100) })
	pub := wstest.Dial(t, nodes[0].wsURL())
	for i := 1; i <= 30; i++ {
		pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":"hist:read","data":%d,"id":%d}`, i, i))
	}
	for i, nd := range nodes {
		c := wstest.Dial(t, nd.wsURL())
		m := readHist(t, roundTrip(c, `{"op":"history","ch":"hist:read","id":3,"limit":5}`))
		if m.Op != "history" || m.ID == nil || *m.ID != 3 || len(m.Msgs) != 5 {
			t.Fatalf("node %d: %+v", i, m)
		}
		for j, e := range m.Msgs {
			if string(e.Data) != fmt.Sprint(26+j) || e.Pos == "" {
				t.Fatalf("node %d: history %d is %s", i, j, e.Data)
			}
		}
		got, recovered := resumeFrom(t, c, "hist:read", m.Msgs[0].Pos)
		if strings.Join(got, ",") != strings.Join(seq(27, 30), ",") || !recovered {
			t.Fatalf("node %d: resumed from history: %v %v", i, got, recovered)
		}

		req, _ := http.NewRequest(http.MethodGet, nd.baseURL()+"/api/history?ch=hist:read&limit=3", nil)
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Msgs []struct {
				Data json.RawMessage `json:"data"`
			} `json:"msgs"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(body.Msgs) != 3 || string(body.Msgs[2].Data) != "30" {
			t.Fatalf("node %d: /api/history %d %v %+v", i, resp.StatusCode, err, body)
		}
	}
	c := wstest.Dial(t, nodes[0].wsURL())
	if m := readHist(t, roundTrip(c, `{"op":"history","ch":"plain","id":4}`)); m.Op != "err" || m.Code != 400 {
		t.Fatalf("history of a channel without history: %+v", m)
	}
}
