//go:build faults

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeNode speaks what issue 8 adds to the protocol, so the suite's
// clients are shown to handle it before any real node does: it refuses
// the first two upgrades with 503 and Retry-After, fragments its hello,
// pings, refuses the first sub with err 503, sends a gap and an op the
// client does not know, and refuses every even publish with err 503.
type fakeNode struct {
	srv      *httptest.Server
	upgrades atomic.Int32
	subs     atomic.Int32
	wg       sync.WaitGroup
}

func newFakeNode(t *testing.T) *fakeNode {
	f := &fakeNode{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(func() {
		f.srv.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeNode) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws" }

func (f *fakeNode) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if f.upgrades.Add(1) <= 2 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"status":"joining"}`, http.StatusServiceUnavailable)
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	f.wg.Add(1)
	go f.serve(conn)
}

func (f *fakeNode) serve(conn net.Conn) {
	defer f.wg.Done()
	defer conn.Close()
	_ = ws.WriteFrame(conn, ws.NewPingFrame([]byte("x")))
	hello := []byte(`{"op":"hello","client":"c1","node":"fake"}`)
	_ = ws.WriteFrame(conn, ws.NewFrame(ws.OpText, false, hello[:10]))
	_ = ws.WriteFrame(conn, ws.NewFrame(ws.OpContinuation, true, hello[10:]))
	for {
		b, err := wsutil.ReadClientText(conn)
		if err != nil {
			return
		}
		var req struct {
			Op string `json:"op"`
			ID int    `json:"id"`
		}
		_ = json.Unmarshal(b, &req)
		for _, out := range f.answer(req.Op, req.ID) {
			if wsutil.WriteServerText(conn, []byte(out)) != nil {
				return
			}
		}
	}
}

func (f *fakeNode) answer(op string, id int) []string {
	refuse := fmt.Sprintf(`{"op":"err","id":%d,"code":503,"reason":"cluster unavailable: joining"}`, id)
	ack := fmt.Sprintf(`{"op":"ack","id":%d}`, id)
	switch {
	case op == "sub" && f.subs.Add(1) == 1:
		return []string{refuse}
	case op == "sub":
		return []string{ack, `{"op":"msg","ch":"fault","data":{"p":"pub0.1","n":1}}`,
			`{"op":"pos","ch":"fault","pos":"7"}`, `{"op":"gap","ch":"fault"}`}
	case op == "pub" && id%2 == 0:
		return []string{refuse}
	default:
		return []string{ack}
	}
}

// TestFaultClientProtocol runs one subscriber and one publisher against
// the fake and checks what they recorded.
func TestFaultClientProtocol(t *testing.T) {
	fake := newFakeNode(t)
	tr := newTraffic(func(int) string { return fake.url() }, func(int) int { return -1 })
	defer tr.stopAll()
	tr.startSlot(plainSub, 0)
	settled := func(cond func() bool) func() (bool, string) {
		return func() (bool, string) { return cond(), "" }
	}
	if _, ok, _ := poll(time.Now(), 20*time.Second, 10*time.Millisecond, settled(func() bool {
		subs, _ := tr.streams()
		if len(subs) != 1 || !subs[0].live() {
			return false
		}
		subs[0].mu.Lock()
		defer subs[0].mu.Unlock()
		return countGaps(subs[0]) == 1
	})); !ok {
		t.Fatal("the subscriber did not get its ack, message and gap")
	}
	tr.startSlot(plainPub, 0)
	if _, ok, _ := poll(time.Now(), 20*time.Second, 10*time.Millisecond, settled(func() bool {
		_, pubs := tr.streams()
		if len(pubs) != 1 {
			return false
		}
		pubs[0].mu.Lock()
		defer pubs[0].mu.Unlock()
		return len(pubs[0].answer) >= 4 && pubs[0].answer[3] != unanswered
	})); !ok {
		t.Fatal("the publisher got no answers")
	}
	tr.stopAll()
	subs, pubs := tr.streams()
	s, p := subs[0], pubs[0]
	if tr.upgrade503 != 2 || s.subErrs[503] != 1 || len(s.events) != 2 || s.events[0].pub != "pub0.1" || len(s.badData) != 0 {
		t.Errorf("subscriber: upgrades refused %d, sub errs %v, events %+v, bad %q", tr.upgrade503, s.subErrs, s.events, s.badData)
	}
	if p.answer[0] != ackedPub || p.answer[1] != 503 || p.answer[2] != ackedPub || p.reasons[503] == "" || len(p.badData) != 0 {
		t.Errorf("publisher: answers %v, reasons %v, bad %q", p.answer[:4], p.reasons, p.badData)
	}
}

// TestFaultClientResumes: a history subscriber whose connection ends
// reconnects with since = the last pos it received, and records the
// ack's recovered; a msg without pos on a channel with history is noted.
func TestFaultClientResumes(t *testing.T) {
	var conns atomic.Int32
	var wg sync.WaitGroup
	sinces := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		k := conns.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			_ = wsutil.WriteServerText(conn, []byte(`{"op":"hello","client":"c1","node":"fake"}`))
			b, err := wsutil.ReadClientText(conn)
			if err != nil {
				return
			}
			var req struct {
				Since string `json:"since"`
			}
			_ = json.Unmarshal(b, &req)
			sinces <- req.Since
			var out []string
			if k == 1 {
				out = []string{`{"op":"ack","id":1}`,
					`{"op":"msg","ch":"hist:fault","pos":"P-1","data":{"p":"hpub0.1","n":1}}`,
					`{"op":"msg","ch":"hist:fault","pos":"P-2","data":{"p":"hpub0.1","n":2}}`}
			} else {
				out = []string{`{"op":"msg","ch":"hist:fault","pos":"P-3","data":{"p":"hpub0.1","n":3}}`,
					`{"op":"ack","id":1,"recovered":true}`,
					`{"op":"msg","ch":"hist:fault","data":{"p":"hpub0.1","n":4}}`}
			}
			for _, o := range out {
				_ = wsutil.WriteServerText(conn, []byte(o))
			}
			if k == 1 {
				_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
				return
			}
			_, _ = wsutil.ReadClientText(conn) // until the test closes it
		}()
	}))
	defer func() {
		srv.Close()
		wg.Wait()
	}()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	tr := newTraffic(func(int) string { return url }, func(int) int {
		if conns.Load() >= 2 {
			return -1
		}
		return 0
	})
	defer tr.stopAll()
	tr.startSlot(histSub, 0)
	if _, ok, _ := poll(time.Now(), 20*time.Second, 10*time.Millisecond, func() (bool, string) {
		subs, _ := tr.streams()
		if len(subs) != 2 {
			return false, ""
		}
		subs[1].mu.Lock()
		defer subs[1].mu.Unlock()
		return len(subs[1].events) == 2, ""
	}); !ok {
		t.Fatal("the subscriber did not reconnect and get its recovery")
	}
	tr.stopAll()
	subs, _ := tr.streams()
	first, second := subs[0], subs[1]
	if s1, s2 := <-sinces, <-sinces; s1 != "" || s2 != "P-2" {
		t.Errorf("subs sent since %q, then %q; want none, then P-2", s1, s2)
	}
	if first.since != "" || first.recovered != nil || second.since != "P-2" || second.recovered == nil || !*second.recovered {
		t.Errorf("recorded: first since %q recovered %v, second since %q recovered %v", first.since, first.recovered, second.since, second.recovered)
	}
	if second.lastPos != "P-3" || len(second.badData) != 1 || !strings.Contains(second.badData[0], "pos") {
		t.Errorf("second connection: last pos %q, noted %q; want P-3 and the msg without pos", second.lastPos, second.badData)
	}
	if first.client != "hsub0" || second.name != "hsub0.2" || second.ch != histChannel {
		t.Errorf("names: %s %s %s", first.client, second.name, second.ch)
	}
}
