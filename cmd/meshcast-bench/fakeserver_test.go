package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeServer is a tiny goroutine-per-connection meshcast v1 server for the
// bench's own tests. Faults can be injected into deliveries to the first
// subscriber of a channel so the detectors have something to find.
type fakeServer struct {
	URL      string // ws://.../ws
	StatsURL string

	dropEvery int // drop every n-th delivery to the first subscriber
	dupEvery  int // send every n-th delivery to the first subscriber twice
	errEvery  int // refuse every n-th subscribe with an err reply
	// agedQuery: v1 subscribers that connected with this raw query get
	// every publish with its "t" a second earlier, as if it had taken a
	// second longer to reach them.
	agedQuery string

	srv *http.Server
	wg  sync.WaitGroup

	mu        sync.Mutex
	pongs     int // Engine.IO pongs received
	publishes int
	conns     map[*fakeConn]struct{}
	chans     map[string][]*fakeConn
	subs      int            // subscribe requests seen
	queries   map[string]int // upgrades by raw query
	sources   map[string]int // upgrades by remote IP
}

type fakeConn struct {
	aged      bool // gets aged frames (agedQuery)
	sio       bool // speaks Socket.IO
	cf        bool // speaks Centrifugo's JSON protocol
	nc        net.Conn
	mu        sync.Mutex // serialises writes
	delivered int        // guarded by the server's mu
}

func (c *fakeConn) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wsutil.WriteServerMessage(c.nc, ws.OpText, b)
}

func newFakeServer(t *testing.T, configure func(*fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{conns: map[*fakeConn]struct{}{}, chans: map[string][]*fakeConn{},
		queries: map[string]int{}, sources: map[string]int{}}
	if configure != nil {
		configure(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", f.serveWS)
	mux.HandleFunc("/socket.io/", f.serveSocketIO)
	mux.HandleFunc("/connection/websocket", f.serveCentrifugo)
	mux.HandleFunc("/api/cluster", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		n := f.publishes
		f.mu.Unlock()
		fmt.Fprintf(w, `{"links":[{"peer":"a","bytes_sent":%d},{"peer":"b","bytes_sent":%d}]}`, 7*n, 3*n)
	})
	mux.HandleFunc("/api/stats", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"goroutines":%d}`, runtime.NumGoroutine())
	})
	f.srv = &http.Server{Handler: mux}
	f.URL = "ws://" + ln.Addr().String() + "/ws"
	f.StatsURL = "http://" + ln.Addr().String() + "/api/stats"
	f.wg.Add(1)
	go func() { defer f.wg.Done(); _ = f.srv.Serve(ln) }()
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) close() {
	_ = f.srv.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.nc.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *fakeServer) serveWS(w http.ResponseWriter, r *http.Request) {
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	f.wg.Add(1)
	defer f.wg.Done()
	c := &fakeConn{nc: nc, aged: f.agedQuery != "" && r.URL.RawQuery == f.agedQuery}
	f.register(c, r)
	defer f.drop(c)
	if c.send([]byte(`{"op":"hello","client":"c1","node":"fake"}`)) != nil {
		return
	}
	for {
		msg, op, err := wsutil.ReadClientData(nc)
		if err != nil {
			return
		}
		if op == ws.OpText {
			f.handle(c, msg)
		}
	}
}

func (f *fakeServer) drop(c *fakeConn) {
	f.mu.Lock()
	delete(f.conns, c)
	for ch, subs := range f.chans {
		for i, s := range subs {
			if s == c {
				f.chans[ch] = append(subs[:i:i], subs[i+1:]...)
				break
			}
		}
	}
	f.mu.Unlock()
	_ = c.nc.Close()
}

func (f *fakeServer) handle(c *fakeConn, msg []byte) {
	var m struct {
		Op   string          `json:"op"`
		Ch   string          `json:"ch"`
		ID   *uint64         `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(msg, &m) != nil {
		_ = c.send([]byte(`{"op":"err","code":400,"reason":"malformed"}`))
		return
	}
	switch m.Op {
	case "sub":
		f.mu.Lock()
		f.subs++
		refuse := f.errEvery > 0 && f.subs%f.errEvery == 0
		if !refuse {
			f.chans[m.Ch] = append(f.chans[m.Ch], c)
		}
		f.mu.Unlock()
		if refuse {
			_ = c.send([]byte(`{"op":"err","code":429,"reason":"refused"}`))
			return
		}
	case "pub":
		f.publish(m.Ch, m.Data)
	default:
		_ = c.send([]byte(`{"op":"err","code":400,"reason":"unknown op"}`))
		return
	}
	if m.ID != nil {
		_ = c.send(fmt.Appendf(nil, `{"op":"ack","id":%d}`, *m.ID))
	}
}

func (f *fakeServer) publish(ch string, data []byte) {
	chq, _ := json.Marshal(ch)
	frame := fmt.Appendf(nil, `{"op":"msg","ch":%s,"data":%s}`, chq, data)
	sioFrame := fmt.Appendf(nil, `42["msg",{"room":%s,"data":%s}]`, chq, data)
	cfFrame := fmt.Appendf(nil, `{"push":{"channel":%s,"pub":{"data":%s,"info":{"user":"","client":"c1"}}}}`, chq, data)
	agedFrame := frame
	if f.agedQuery != "" {
		agedFrame = fmt.Appendf(nil, `{"op":"msg","ch":%s,"data":%s}`, chq, agePayload(data))
	}
	f.mu.Lock()
	f.publishes++
	subs := append([]*fakeConn(nil), f.chans[ch]...)
	var times []int
	for i, s := range subs {
		s.delivered++
		n := 1
		if i == 0 && f.dropEvery > 0 && s.delivered%f.dropEvery == 0 {
			n = 0
		}
		if i == 0 && f.dupEvery > 0 && s.delivered%f.dupEvery == 0 {
			n = 2
		}
		times = append(times, n)
	}
	f.mu.Unlock()
	for i, s := range subs {
		if s.cf {
			// Centrifugo packs what it has queued into one frame, '\n'
			// between messages: a duplicate goes out in the same frame.
			if times[i] > 0 {
				_ = s.send(bytes.Join(slices.Repeat([][]byte{cfFrame}, times[i]), []byte("\n")))
			}
			continue
		}
		for range times[i] {
			switch {
			case s.sio:
				_ = s.send(sioFrame)
			case s.aged:
				_ = s.send(agedFrame)
			default:
				_ = s.send(frame)
			}
		}
	}
}

// serveSocketIO is the Socket.IO v4 flavour: Engine.IO open, namespace
// connect, "join" and "msg" events, and one server ping that must be
// answered.
func (f *fakeServer) serveSocketIO(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("EIO") != "4" || r.URL.Query().Get("transport") != "websocket" {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	f.wg.Add(1)
	defer f.wg.Done()
	c := &fakeConn{nc: nc, sio: true}
	f.register(c, r)
	defer f.drop(c)
	if c.send([]byte(`0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}`)) != nil {
		return
	}
	for {
		msg, op, err := wsutil.ReadClientData(nc)
		if err != nil || op != ws.OpText {
			return
		}
		switch s := string(msg); {
		case s == "40":
			_ = c.send([]byte(`40{"sid":"n1"}`))
			_ = c.send([]byte("2"))
		case s == "3":
			f.mu.Lock()
			f.pongs++
			f.mu.Unlock()
		case len(s) > 2 && s[:2] == "42":
			f.handleEvent(c, msg[2:])
		}
	}
}

func (f *fakeServer) handleEvent(c *fakeConn, b []byte) {
	// An event asking for an ack carries its id before the array.
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	ackID := string(b[:i])
	b = b[i:]
	var ev []json.RawMessage
	if json.Unmarshal(b, &ev) != nil || len(ev) != 2 {
		return
	}
	var name string
	_ = json.Unmarshal(ev[0], &name)
	switch name {
	case "join":
		var room string
		if json.Unmarshal(ev[1], &room) == nil {
			f.mu.Lock()
			f.chans[room] = append(f.chans[room], c)
			f.mu.Unlock()
			if ackID != "" {
				_ = c.send([]byte("43" + ackID + "[]"))
			}
		}
	case "msg":
		var m struct {
			Room string          `json:"room"`
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(ev[1], &m) == nil {
			f.publish(m.Room, m.Data)
		}
	}
}

func (f *fakeServer) pongCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pongs
}

// stats returns copies of the per-query and per-source upgrade counts.
func (f *fakeServer) stats() (queries, sources map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.queries), maps.Clone(f.sources)
}

// register counts a new connection by query and source address.
// agePayload returns the bench payload data with its "t" one second
// earlier.
func agePayload(data []byte) []byte {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if d.Decode(&m) != nil {
		return data
	}
	t, err := m["t"].(json.Number).Int64()
	if err != nil {
		return data
	}
	m["t"] = t - int64(time.Second)
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}

func (f *fakeServer) register(c *fakeConn, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[c] = struct{}{}
	f.queries[r.URL.RawQuery]++
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		f.sources[host]++
	}
}

// serveCentrifugo is the Centrifugo flavour (JSON protocol v2): connect,
// subscribe and publish commands with id'd replies, publication pushes,
// and a server ping ({}) right after the subscribe reply, in the same
// frame, that must be answered with {}.
func (f *fakeServer) serveCentrifugo(w http.ResponseWriter, r *http.Request) {
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	f.wg.Add(1)
	defer f.wg.Done()
	c := &fakeConn{nc: nc, cf: true}
	f.register(c, r)
	defer f.drop(c)
	connected := false
	for {
		msg, op, err := wsutil.ReadClientData(nc)
		if err != nil || op != ws.OpText {
			return
		}
		if string(msg) == "{}" {
			f.mu.Lock()
			f.pongs++
			f.mu.Unlock()
			continue
		}
		var cmd struct {
			ID        uint64 `json:"id"`
			Connect   *struct{}
			Subscribe *struct {
				Channel string `json:"channel"`
			}
			Publish *struct {
				Channel string          `json:"channel"`
				Data    json.RawMessage `json:"data"`
			}
		}
		if json.Unmarshal(msg, &cmd) != nil || cmd.ID == 0 {
			return // Centrifugo disconnects a client sending garbage
		}
		switch {
		case cmd.Connect != nil:
			connected = true
			_ = c.send(fmt.Appendf(nil, `{"id":%d,"connect":{"client":"c1","version":"6.9.1","ping":25,"pong":true}}`, cmd.ID))
		case !connected:
			return
		case cmd.Subscribe != nil:
			f.mu.Lock()
			f.subs++
			refuse := f.errEvery > 0 && f.subs%f.errEvery == 0
			if !refuse {
				f.chans[cmd.Subscribe.Channel] = append(f.chans[cmd.Subscribe.Channel], c)
			}
			f.mu.Unlock()
			if refuse {
				_ = c.send(fmt.Appendf(nil, `{"id":%d,"error":{"code":103,"message":"permission denied"}}`, cmd.ID))
				continue
			}
			_ = c.send(fmt.Appendf(nil, "{\"id\":%d,\"subscribe\":{}}\n{}", cmd.ID))
		case cmd.Publish != nil:
			f.publish(cmd.Publish.Channel, cmd.Publish.Data)
			_ = c.send(fmt.Appendf(nil, `{"id":%d,"publish":{}}`, cmd.ID))
		}
	}
}
