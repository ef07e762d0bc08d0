package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/transport/wstest"
)

func TestCentrifugoKind(t *testing.T) {
	var p protoCentrifugo
	cases := []struct {
		msg  string
		want msgKind
	}{
		{`{}`, kindPing},
		{`{"push":{"channel":"bench","pub":{"data":{"t":1,"s":2,"p":3,"x":""},"info":{"user":"","client":"c"}}}}`, kindMsg},
		{`{"push":{"channel":"bench","join":{"info":{"user":"u","client":"c"}}}}`, kindOther},
		{`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`, kindOther},
		{`{"id":1,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}`, kindAck},
		{`{"id":12,"subscribe":{}}`, kindAck},
		{`{"id":7,"publish":{}}`, kindAck},
		{`{"id":2,"error":{"code":103,"message":"permission denied"}}`, kindErr},
		{``, kindOther},
		{`{"op":"msg"}`, kindOther},
	}
	for _, c := range cases {
		if got := p.kind([]byte(c.msg)); got != c.want {
			t.Errorf("kind(%s) = %d, want %d", c.msg, got, c.want)
		}
	}
}

func TestCentrifugoNext(t *testing.T) {
	var p protoCentrifugo
	frame := []byte("{\"id\":2,\"subscribe\":{}}\n{}\n{\"push\":{\"channel\":\"a\",\"pub\":{\"data\":1}}}")
	var got []string
	for rest := frame; len(rest) > 0; {
		var msg []byte
		msg, rest = p.next(rest)
		got = append(got, string(msg))
	}
	want := []string{`{"id":2,"subscribe":{}}`, `{}`, `{"push":{"channel":"a","pub":{"data":1}}}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
	// The other protocols never split.
	for _, q := range []protocol{protoV1{}, protoSocketIO{}} {
		if msg, rest := q.next(frame); !bytes.Equal(msg, frame) || rest != nil {
			t.Errorf("%T split a frame", q)
		}
	}
}

func TestCentrifugoCommands(t *testing.T) {
	var p protoCentrifugo
	chq := quoteJSON("room-7")
	var sub struct {
		ID        uint64 `json:"id"`
		Subscribe struct {
			Channel string `json:"channel"`
		} `json:"subscribe"`
	}
	if err := json.Unmarshal(p.appendSub(nil, chq, 1), &sub); err != nil || sub.ID != 2 || sub.Subscribe.Channel != "room-7" {
		t.Fatalf("subscribe %+v %v", sub, err)
	}
	var pub struct {
		ID      uint64 `json:"id"`
		Publish struct {
			Channel string `json:"channel"`
			Data    struct {
				T int64  `json:"t"`
				S uint64 `json:"s"`
				P int    `json:"p"`
			} `json:"data"`
		} `json:"publish"`
	}
	data := appendPayload(nil, 12345, 6, 2, 100)
	if err := json.Unmarshal(p.appendPub(nil, chq, 9, data), &pub); err != nil || pub.ID != 10 ||
		pub.Publish.Channel != "room-7" || pub.Publish.Data.T != 12345 || pub.Publish.Data.S != 6 || pub.Publish.Data.P != 2 {
		t.Fatalf("publish %+v %v", pub, err)
	}
	for in, want := range map[string]string{
		"ws://127.0.0.1:8101":                      "ws://127.0.0.1:8101/connection/websocket",
		"ws://127.0.0.1:8101/ws":                   "ws://127.0.0.1:8101/connection/websocket",
		"ws://127.0.0.1:8101/connection/websocket": "ws://127.0.0.1:8101/connection/websocket",
	} {
		if got := p.wsURL(in); got != want {
			t.Errorf("wsURL(%s) = %s", in, got)
		}
	}
	if id, ok := cfReplyID([]byte(`{"id":42,"publish":{}}`)); !ok || id != 42 {
		t.Errorf("reply id %d %v", id, ok)
	}
	if _, ok := cfReplyID([]byte(`{"push":{}}`)); ok {
		t.Error("a push has a reply id")
	}
}

// cfFrame is a frame of n publication pushes as Centrifugo batches them.
func cfFrame(n int) []byte {
	var b []byte
	for i := range n {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, `{"push":{"channel":"bench","pub":{"data":`...)
		b = appendPayload(b, time.Now().UnixNano(), uint64(i), 1, 100)
		b = append(b, `,"info":{"user":"","client":"0b7d8c2e-4f1a-4c55-9f3e-1d2c3b4a5f60"}}}}`...)
	}
	return b
}

// cfReceive is the per-frame work of a subscriber's reader for Centrifugo:
// split, classify, and find the payload's fields.
func cfReceive(p protocol, frame []byte) (n int) {
	for rest := frame; len(rest) > 0; {
		var msg []byte
		msg, rest = p.next(rest)
		if p.kind(msg) == kindMsg {
			if _, _, _, ok := scanPayload(msg); ok {
				n++
			}
		}
	}
	return n
}

// The receive path allocates nothing per delivery, as meshcast's does.
func TestCentrifugoReceiveAllocs(t *testing.T) {
	frame := cfFrame(16)
	var p protocol = protoCentrifugo{}
	if n := cfReceive(p, frame); n != 16 {
		t.Fatalf("parsed %d of 16", n)
	}
	if a := testing.AllocsPerRun(100, func() { cfReceive(p, frame) }); a != 0 {
		t.Fatalf("%v allocations per frame", a)
	}
}

// BenchmarkCentrifugoReceive: CPU per delivery of the protocol part of the
// receive path (frame reading and counting are shared), with meshcast's v1
// frame for scale.
func BenchmarkCentrifugoReceive(b *testing.B) {
	v1 := []byte(`{"op":"msg","ch":"bench","data":`)
	v1 = append(appendPayload(v1, time.Now().UnixNano(), 1, 1, 100), '}')
	for _, c := range []struct {
		name  string
		p     protocol
		frame []byte
		n     int
	}{
		{"centrifugo-1-per-frame", protoCentrifugo{}, cfFrame(1), 1},
		{"centrifugo-16-per-frame", protoCentrifugo{}, cfFrame(16), 16},
		{"meshcast-v1", protoV1{}, v1, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cfReceive(c.p, c.frame)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.n), "ns/delivery")
		})
	}
}

// TestFanoutCentrifugo drives the fake Centrifugo through the real worker
// path: connect, subscribe (the ack arrives with a ping in one frame),
// client publishes, and pushes batched in one frame, which must count as
// separate deliveries (here: duplicates, so the split is visible).
func TestFanoutCentrifugo(t *testing.T) {
	f := newFakeServer(t, func(f *fakeServer) { f.dupEvery = 10 })
	base := strings.TrimSuffix(f.URL, "/ws")
	cc := testConn(base)
	cc.Proto = "centrifugo"
	rep, s := oneStep(t, cc, 10)
	if rep.Acked != 10 || s.Published != 100 || s.Received != s.Expected || s.Lost != 0 || s.Dups != 10 || s.PubErrs != 0 {
		t.Fatalf("acked %d step %+v", rep.Acked, s)
	}
	// Every subscriber answered the ping that came with its subscribe reply.
	waitFor(t, 5*time.Second, func() bool { return f.pongCount() == 10 })
}

func TestFanoutCentrifugoRefused(t *testing.T) {
	f := newFakeServer(t, func(f *fakeServer) { f.errEvery = 5 })
	cc := testConn(strings.TrimSuffix(f.URL, "/ws"))
	cc.Proto = "centrifugo"
	cfg := fanoutConfig{connConfig: cc, Subs: 10, Pubs: 1, Rate: 20, Size: 100,
		Duration: time.Second, Drain: 2 * time.Second, P99Bound: loadedP99}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 8 || rep.SubErrs != 2 {
		t.Fatalf("acked %d, subscribe errors %d", rep.Acked, rep.SubErrs)
	}
}

// TestCentrifugoConfig checks the committed config without the binary:
// valid JSON with the v6 keys the bench relies on.
func TestCentrifugoConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("peer", "centrifugo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Engine struct {
			Type  string `json:"type"`
			Redis struct {
				Address []string `json:"address"`
			} `json:"redis"`
		} `json:"engine"`
		Client struct {
			Anonymous bool `json:"allow_anonymous_connect_without_token"`
		} `json:"client"`
		Channel struct {
			WithoutNamespace map[string]bool `json:"without_namespace"`
		} `json:"channel"`
		Health struct {
			Enabled bool `json:"enabled"`
		} `json:"health"`
		UsageStats struct {
			Disabled bool `json:"disabled"`
		} `json:"usage_stats"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Engine.Type != "memory" || len(c.Engine.Redis.Address) != 1 || !c.Client.Anonymous || !c.Health.Enabled || !c.UsageStats.Disabled {
		t.Errorf("config %+v", c)
	}
	for _, k := range []string{"allow_subscribe_for_client", "allow_subscribe_for_anonymous", "allow_publish_for_client",
		"allow_publish_for_anonymous"} {
		if !c.Channel.WithoutNamespace[k] {
			t.Errorf("channel.without_namespace.%s is not true", k)
		}
	}
}

// centrifugoBin is where centrifugo.sh installs the binary, or "" when it
// is not there: the default test run must not spend minutes building it.
func centrifugoBin() string {
	cache := os.Getenv("CF_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "meshcast-bench")
	}
	bin := filepath.Join(cache, "centrifugo-v6.9.1", "bin", "centrifugo")
	if _, err := os.Stat(bin); err != nil {
		return ""
	}
	return bin
}

// TestPeerCentrifugo runs the real Centrifugo when centrifugo.sh has
// installed it (peer/centrifugo.sh install): one node on the memory
// engine, then two on Redis, each driven through the bench's Centrifugo
// client. It also checks that Centrifugo knows every key of the config.
func TestPeerCentrifugo(t *testing.T) {
	if centrifugoBin() == "" {
		t.Skip("centrifugo not installed (run peer/centrifugo.sh install)")
	}
	for _, bin := range []string{"curl", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	wd, _ := os.Getwd()
	script := filepath.Join(wd, "peer", "centrifugo.sh")
	ctx := context.Background()
	for _, nodes := range []int{1, 2} {
		var logs wstest.SyncBuffer
		cl, err := startCentrifugo(ctx, peerOpts{Script: script, RedisPort: 16392, BasePort: 13201}, nodes, &logs)
		if err != nil {
			t.Fatalf("%d node(s): %v\n%s", nodes, err, logs.String())
		}
		cc := testConn(cl.URLs...)
		cc.Proto = "centrifugo"
		cfg := fanoutConfig{connConfig: cc, Pubs: 2, Rate: 40, Size: 100, Duration: time.Second, Drain: 3 * time.Second,
			Channel: "room", Rooms: 4, RoomSize: 5, Subs: 20, CrossEvery: 2, RedisAddr: cl.RedisAddr}
		rep, err := runFanout(ctx, cfg, io.Discard)
		if err != nil {
			cl.Stop()
			t.Fatalf("%d node(s): %v", nodes, err)
		}
		s := rep.Steps[0]
		if rep.Acked != 20 || s.Published != 40 || s.Received != 200 || s.Lost != 0 || s.Dups != 0 || s.PubErrs != 0 {
			t.Errorf("%d node(s): acked %d step %+v", nodes, rep.Acked, s)
		}
		if nodes > 1 && (cl.RedisAddr == "" || s.CrossBytes <= 0) {
			t.Errorf("%d nodes: no bytes through redis (%q): %+v", nodes, cl.RedisAddr, s)
		}
		if nodes == 1 && cl.RedisAddr != "" {
			t.Errorf("1 node uses redis %s", cl.RedisAddr)
		}
		pids := cl.PIDs
		cl.Stop()
		for _, pid := range pids {
			if _, err := readProcStatus(pid); err == nil {
				t.Errorf("centrifugo node %d still running after Stop", pid)
			}
		}
		if strings.Contains(logs.String(), "unknown key") {
			t.Errorf("centrifugo does not know a key of peer/centrifugo.json:\n%s", logs.String())
		}
	}
}
