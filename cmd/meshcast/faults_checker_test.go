//go:build faults

package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The check itself must be able to fail: these feed it made-up streams.

var checkEpoch = time.Unix(1_000_000, 0)

func at(ms int) time.Time { return checkEpoch.Add(time.Duration(ms) * time.Millisecond) }

// fakePub sent n publishes at 10 ms intervals from t=100ms, all acked
// except those in refused (err 503) and unanswered.
func fakePub(n int, refused, unans []int) *pubStream {
	p := newPubStream("pub0.1", 0, 0)
	for seq := 1; seq <= n; seq++ {
		p.sentAt = append(p.sentAt, at(100+10*seq))
		p.answer = append(p.answer, ackedPub)
		p.answerAt = append(p.answerAt, at(101+10*seq))
		p.notStored = append(p.notStored, false)
	}
	for _, seq := range refused {
		p.answer[seq-1] = 503
	}
	for _, seq := range unans {
		p.answer[seq-1] = unanswered
	}
	p.endAt, p.byTest = at(100000), true
	return p
}

// fakeSub was acked at t=50ms and received script: "m3" is message 3 of
// pub0.1, "g" a gap; it ended by the test unless ended is an error.
func fakeSub(script string, ended error) *subStream {
	s := newSubStream("sub1.1", 1, 1)
	s.ackAt = at(50)
	for i, w := range strings.Fields(script) {
		e := event{at: at(200 + i)}
		if w == "g" {
			e.gap = true
		} else {
			e.pub = "pub0.1"
			for _, c := range w[1:] {
				e.seq = e.seq*10 + int(c-'0')
			}
		}
		s.events = append(s.events, e)
	}
	s.endAt, s.endErr, s.byTest = at(100000), ended, ended == nil
	if ended == nil {
		s.endErr = errStopped
	}
	return s
}

func checkOne(s *subStream, p *pubStream) checkResult {
	return checkTraffic([]*subStream{s}, []*pubStream{p}, func(t time.Time) string { return t.Sub(checkEpoch).String() })
}

func TestFaultCheckerHoles(t *testing.T) {
	eof := errors.New("EOF")
	for _, c := range []struct {
		name, script string
		ended        error
		silent, gap  int
		disconnect   int
	}{
		{"everything", "m1 m2 m3 m4 m5", nil, 0, 0, 0},
		{"a silent hole", "m1 m2 m5", nil, 2, 0, 0},
		{"a gap between covers", "m1 m2 g m5", nil, 0, 2, 0},
		{"a gap before the last message before the hole does not", "m1 g m2 m5", nil, 2, 0, 0},
		{"a gap after the first message after the hole does not", "m1 m2 m5 g", nil, 2, 0, 0},
		{"a trailing hole is silent when the test ended the stream", "m1 m2 m3", nil, 2, 0, 0},
		{"a trailing hole is covered by a disconnect", "m1 m2 m3", eof, 0, 0, 2},
		{"a trailing hole is covered by a gap before the end", "m1 m2 m3 g", nil, 0, 2, 0},
		{"a leading hole needs a gap before the first message", "m3 m4 m5", nil, 2, 0, 0},
		{"a leading hole covered", "g m3 m4 m5", nil, 0, 2, 0},
		{"two holes, one gap", "m1 g m3 m5", nil, 1, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := checkOne(fakeSub(c.script, c.ended), fakePub(5, nil, nil))
			got := res.subs[0]
			if got.missSilent != c.silent || got.missGap != c.gap || got.missClose != c.disconnect {
				t.Errorf("silent %d, by gap %d, by disconnect %d; want %d, %d, %d", got.missSilent, got.missGap, got.missClose, c.silent, c.gap, c.disconnect)
			}
			if (c.silent > 0) != (len(res.violations) > 0) {
				t.Errorf("violations %q", res.violations)
			}
		})
	}
}

func TestFaultCheckerScope(t *testing.T) {
	// Sent before the sub's ack: not owed to it.
	s := fakeSub("m4 m5", nil)
	s.ackAt = at(135) // after #1-#3 were sent
	if res := checkOne(s, fakePub(5, nil, nil)); len(res.violations) != 0 {
		t.Errorf("publishes sent before the ack are owed: %q", res.violations)
	}
	// A gap received before the ack covers nothing after it.
	s = fakeSub("g m2 m3", nil)
	s.ackPos = 1
	if res := checkOne(s, fakePub(3, nil, nil)); res.subs[0].missSilent != 1 {
		t.Errorf("a gap before the ack covered a later hole: %+v", res.subs[0])
	}
	// Refused and unanswered publishes are not owed.
	if res := checkOne(fakeSub("m1 m3", nil), fakePub(4, []int{2}, []int{4})); len(res.violations) != 0 {
		t.Errorf("refused or unanswered publishes counted as owed: %q", res.violations)
	}
}

func TestFaultCheckerDeliveryFaults(t *testing.T) {
	for _, c := range []struct{ name, script, want string }{
		{"refused publish delivered", "m1 m2 m3", "refused with err 503"},
		{"duplicate", "m1 m2 m2 m3", "duplicate"},
		{"out of order", "m1 m3 m2", "out of order"},
		{"never sent", "m1 m3 m9", "never sent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := checkOne(fakeSub(c.script, nil), fakePub(3, []int{2}, nil))
			if !strings.Contains(strings.Join(res.violations, "\n"), c.want) {
				t.Errorf("want a violation saying %q, got %q", c.want, res.violations)
			}
		})
	}
	if res := checkOne(fakeSub("m1 m2 m3", nil), fakePub(3, nil, []int{2})); len(res.violations) != 0 {
		t.Errorf("an unanswered publish may arrive: %q", res.violations)
	}
}

// histConn is one made-up connection of a history client: its script (as
// fakeSub's), the since it resumed from, and its ack: "true", "false", or
// "" (never acked).
type histConn struct{ script, since, ack string }

// fakeHistClient makes the connections of client hsub1, one after the
// other, each but the last ended by the server (EOF).
func fakeHistClient(conns ...histConn) []*subStream {
	var out []*subStream
	for i, c := range conns {
		s := fakeSub(c.script, errors.New("EOF"))
		s.name, s.client, s.ch, s.gen, s.since = fmt.Sprintf("hsub1.%d", i+1), "hsub1", histChannel, i+1, c.since
		start := 1000 * i
		s.ackAt, s.recovered = time.Time{}, nil
		if c.ack != "" {
			r := c.ack == "true"
			s.ackAt, s.subAt = at(50+start), at(40+start)
			if c.since != "" {
				s.recovered = &r
			}
		}
		for j := range s.events {
			s.events[j].at = at(200 + start + j)
		}
		s.endAt = at(900 + start)
		if i == len(conns)-1 {
			s.endErr, s.byTest = errStopped, true
		}
		out = append(out, s)
	}
	return out
}

func checkHist(subs []*subStream, p *pubStream) *histResult {
	for _, s := range subs {
		s.ch = histChannel
	}
	p.ch = histChannel
	return checkHistoryTraffic(subs, []*pubStream{p}, func(t time.Time) string { return t.Sub(checkEpoch).String() })
}

func TestFaultCheckerHistory(t *testing.T) {
	for _, c := range []struct {
		name        string
		conns       []histConn
		silent, gap int
		want        string // in a violation; "" for none
	}{
		{"recovered:true, complete", []histConn{{"m1 m2 m3", "", "true"}, {"m4 m5", "p3", "true"}}, 0, 0, ""},
		{"recovered:true and a hole across it", []histConn{{"m1 m2", "", "true"}, {"m4 m5", "p2", "true"}}, 1, 0, "recovered:true"},
		{"recovered:false covers a hole at the seam", []histConn{{"m1 m2", "", "true"}, {"m4 m5", "p2", "false"}}, 0, 1, ""},
		{"recovered:false covers no hole after the seam", []histConn{{"m1 m2", "", "true"}, {"m3 m5", "p2", "false"}}, 1, 0, "SILENT HOLE"},
		{"a duplicate across the seam", []histConn{{"m1 m2 m3", "", "true"}, {"m3 m4 m5", "p3", "true"}}, 0, 0, "duplicate"},
		{"a duplicate across a recovered:false", []histConn{{"m1 m2 m3", "", "true"}, {"m3 m4 m5", "p3", "false"}}, 0, 0, "duplicate"},
		{"a connection that ended before its ack covers its seam", []histConn{{"m1", "", "true"}, {"m3", "p1", ""}, {"m4 m5", "p3", "true"}}, 0, 1, ""},
		{"a reconnect before any pos came covers its seam", []histConn{{"", "", "true"}, {"m3 m4 m5", "", "true"}}, 0, 2, ""},
		{"a last connection never acked", []histConn{{"m1 m2", "", "true"}, {"m3 m4 m5", "p2", ""}}, 0, 0, "still not acked"},
		{"a gap frame within a connection", []histConn{{"m1 g m3", "", "true"}, {"m5", "p3", "true"}}, 1, 1, "SILENT HOLE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := checkHist(fakeHistClient(c.conns...), fakePub(5, nil, nil))
			got := h.clients[0].tally
			if got.missSilent != c.silent || got.missGap != c.gap {
				t.Errorf("silent %d, covered %d; want %d, %d", got.missSilent, got.missGap, c.silent, c.gap)
			}
			all := strings.Join(h.violations, "\n")
			if c.want == "" && len(h.violations) > 0 || c.want != "" && !strings.Contains(all, c.want) {
				t.Errorf("violations %q; want one saying %q", h.violations, c.want)
			}
		})
	}
}

func TestFaultCheckerHistoryNotStored(t *testing.T) {
	notStored := func() *pubStream {
		p := fakePub(5, []int{3}, nil)
		p.notStored[2] = true
		return p
	}
	for _, c := range []struct {
		name, script string
		pub          *pubStream
		delivered    int
		want         string
	}{
		{"a publish not stored may arrive", "m1 m2 m3 m4 m5", notStored(), 1, ""},
		{"or not", "m1 m2 m4 m5", notStored(), 0, ""},
		{"but once", "m1 m2 m3 m3 m4 m5", notStored(), 1, "duplicate"},
		{"a publish refused otherwise must not", "m1 m2 m3 m4 m5", fakePub(5, []int{3}, nil), 0, "refused with err 503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := checkHist(fakeHistClient(histConn{c.script, "", "true"}), c.pub)
			all := strings.Join(h.violations, "\n")
			if c.want == "" && len(h.violations) > 0 || c.want != "" && !strings.Contains(all, c.want) {
				t.Errorf("violations %q; want one saying %q", h.violations, c.want)
			}
			if h.notStoredDelivered != c.delivered {
				t.Errorf("not stored and delivered: %d, want %d", h.notStoredDelivered, c.delivered)
			}
		})
	}
}

// TestFaultCheckerRefill: a history subscriber that stayed connected must
// get every acked publish; a gap frame does not excuse it, unless the
// scenario says why.
func TestFaultCheckerRefill(t *testing.T) {
	h := checkHist(fakeHistClient(histConn{"m1 m2 g m5", "", "true"}), fakePub(5, nil, nil))
	h.stayedConnectedComplete()
	if !strings.Contains(strings.Join(h.violations, "\n"), "NOT REFILLED") {
		t.Errorf("a subscriber that stayed connected missed 2 under a gap: violations %q", h.violations)
	}
	h = checkHist(fakeHistClient(histConn{"m1 m2", "", "true"}, histConn{"m5", "p2", "false"}), fakePub(5, nil, nil))
	h.stayedConnectedComplete()
	if len(h.violations) != 0 {
		t.Errorf("a subscriber that reconnected with recovered:false may miss some: violations %q", h.violations)
	}
}
