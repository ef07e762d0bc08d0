package history

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func msgs(stream uint64, from, to uint64) []Msg {
	var out []Msg
	for seq := from; seq <= to; seq++ {
		out = append(out, Msg{Stream: stream, Seq: seq, Data: fmt.Appendf(nil, `"%d-%d"`, stream, seq)})
	}
	return out
}

func appendAll(s *Store, ch string, lim Limits, ms []Msg) {
	for _, m := range ms {
		s.Append(ch, lim, m)
	}
}

func seqs(ms []Msg) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d:%d", m.Stream, m.Seq))
	}
	return out
}

// TestAfterFrontier: what comes after a frontier, per stream, in arrival
// order, and whether it is complete.
func TestAfterFrontier(t *testing.T) {
	s := New(1 << 20)
	lim := Limits{Max: 100}
	// Streams 7 and 9 interleaved, as a node delivers them.
	for i := uint64(1); i <= 3; i++ {
		s.Append("c", lim, msgs(7, i, i)[0])
		s.Append("c", lim, msgs(9, i, i)[0])
	}
	r := s.After("c", Frontier{{7, 2}}, 1<<20)
	if got := seqs(r.Msgs); !slices.Equal(got, []string{"9:1", "9:2", "7:3", "9:3"}) {
		t.Fatalf("after {7:2}: %v", got)
	}
	if !Complete(Pos{Marks: Frontier{{7, 2}}}, r.Spans) {
		t.Fatal("everything is there: incomplete?")
	}
	if s.Append("c", lim, msgs(7, 2, 2)[0]) {
		t.Fatal("an old message was stored twice")
	}
	if got := seqs(s.Last("c", 2)); !slices.Equal(got, []string{"7:3", "9:3"}) {
		t.Fatalf("last 2: %v", got)
	}
}

// TestWindowExceeded: once a stream's early messages are evicted, a
// frontier from before them is no longer complete; one after them is.
func TestWindowExceeded(t *testing.T) {
	s := New(1 << 20)
	appendAll(s, "c", Limits{Max: 5}, msgs(7, 1, 10))
	r := s.After("c", Frontier{{7, 3}}, 1<<20)
	if got := seqs(r.Msgs); !slices.Equal(got, []string{"7:6", "7:7", "7:8", "7:9", "7:10"}) {
		t.Fatalf("kept %v", got)
	}
	if Complete(Pos{Marks: Frontier{{7, 3}}}, r.Spans) {
		t.Fatal("4 and 5 were evicted: complete?")
	}
	if !Complete(Pos{Marks: Frontier{{7, 5}}}, r.Spans) {
		t.Fatal("after 5 everything is held")
	}
	if Complete(Pos{}, r.Spans) {
		t.Fatal("from the beginning: 1..5 are gone")
	}
}

// TestCompleteAcrossNodes: spans from several nodes together cover what
// none covers alone; a stream the asker knows and no node knows is gone.
func TestCompleteAcrossNodes(t *testing.T) {
	a := []Span{{Stream: 7, First: 1, Last: 4}}
	b := []Span{{Stream: 7, First: 5, Last: 9}, {Stream: 8, First: 1, Last: 2}}
	all := append(slices.Clone(a), b...)
	if Complete(Pos{}, a) != true || Complete(Pos{}, b) || !Complete(Pos{}, all) {
		t.Fatal("union of spans")
	}
	if Complete(Pos{Marks: Frontier{{7, 2}, {99, 5}}}, all) {
		t.Fatal("stream 99 is unknown to every node: complete?")
	}
	emptied := []Span{{Stream: 7, First: 10, Last: 9}} // held up to 9, all evicted
	if Complete(Pos{Marks: Frontier{{7, 5}}}, emptied) || !Complete(Pos{Marks: Frontier{{7, 9}}}, emptied) {
		t.Fatal("an emptied span still says how far the stream got")
	}
	// A stream the position does not name: what was evicted is older than
	// the position, so it is not missed.
	evictedOld := []Span{{Stream: 8, First: 5, Last: 9, BeforeTime: 1000}}
	if !Complete(Pos{Time: 1000 + Skew + 1}, evictedOld) || Complete(Pos{Time: 1000}, evictedOld) {
		t.Fatal("an unknown stream is judged by the time of what was evicted")
	}
}

// TestHoleRestartsSpan: a message after a hole does not let the store
// claim the missing ones.
func TestHoleRestartsSpan(t *testing.T) {
	s := New(1 << 20)
	appendAll(s, "c", Limits{Max: 100}, msgs(7, 1, 3))
	appendAll(s, "c", Limits{Max: 100}, msgs(7, 6, 6))
	r := s.After("c", Frontier{{7, 1}}, 1<<20)
	if Complete(Pos{Marks: Frontier{{7, 1}}}, r.Spans) {
		t.Fatal("4 and 5 were never stored: complete?")
	}
	if !Complete(Pos{Marks: Frontier{{7, 5}}}, r.Spans) {
		t.Fatal("after 5 everything is held")
	}
}

// TestMemoryBound: the node-wide budget evicts the oldest messages of any
// channel first, and counts them.
func TestMemoryBound(t *testing.T) {
	per := int64(len(`"7-10"`) + entryOverhead)
	s := New(10 * per)
	lim := Limits{Max: 1000}
	appendAll(s, "a", lim, msgs(7, 1, 8))
	appendAll(s, "b", lim, msgs(8, 1, 8))
	st := s.Stats()
	if st.Bytes > 10*per || st.Messages > 10 || st.Evicted != 6 {
		t.Fatalf("stats %+v", st)
	}
	if got := seqs(s.Last("a", 100)); len(got) != 2 || got[0] != "7:7" {
		t.Fatalf("a keeps its newest: %v", got)
	}
	if got := seqs(s.Last("b", 100)); len(got) != 8 {
		t.Fatalf("b, newer, is whole: %v", got)
	}
}

// TestBudgetPages: a big history comes in pages.
func TestBudgetPages(t *testing.T) {
	s := New(1 << 20)
	appendAll(s, "c", Limits{Max: 1000}, msgs(7, 1, 100))
	var got []Msg
	f := Frontier(nil)
	for page := 0; ; page++ {
		r := s.After("c", f, 50)
		got = append(got, r.Msgs...)
		for _, m := range r.Msgs {
			f = f.With(m.Stream, m.Seq)
		}
		if !r.More {
			break
		}
		if page > 100 {
			t.Fatal("no progress")
		}
	}
	if len(got) != 100 || got[99].Seq != 100 {
		t.Fatalf("%d messages", len(got))
	}
}

func TestPosRoundTrip(t *testing.T) {
	for _, f := range []Frontier{nil, {{1, 1}}, {{3, 7}, {1 << 62, 1 << 40}}} {
		p := Pos{Marks: f, Time: 1764806400123}
		got, err := DecodePos(42, EncodePos(42, p))
		if err != nil || !slices.Equal(got.Marks, f) || got.Time != p.Time {
			t.Fatalf("%v: got %v, %v", p, got, err)
		}
		if _, err := DecodePos(43, EncodePos(42, p)); !errors.Is(err, ErrOtherPlace) {
			t.Fatalf("another place: %v", err)
		}
	}
	for _, bad := range []string{"", "p1.", "p1.!!", "x1.AAAA", "p1." + strings.Repeat("A", 100000)} {
		if _, err := DecodePos(42, bad); !errors.Is(err, ErrBadPos) {
			t.Errorf("%.20q: %v", bad, err)
		}
	}
}

// FuzzDecodePos: any string decodes or fails cleanly, and whatever decodes
// is a valid frontier that encodes back to an equivalent position.
func FuzzDecodePos(f *testing.F) {
	f.Add(EncodePos(7, Pos{Marks: Frontier{{3, 7}, {9, 1}}, Time: 99}))
	f.Add(EncodePos(7, Pos{}))
	f.Add("p1.AAAABwI")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodePos(7, s)
		if err != nil {
			return
		}
		fr := p.Marks
		for i, m := range fr {
			if m.Stream == 0 || m.Seq == 0 || (i > 0 && fr[i-1].Stream >= m.Stream) {
				t.Fatalf("invalid frontier %v from %q", fr, s)
			}
		}
		back, err := DecodePos(7, EncodePos(7, p))
		if err != nil || !slices.Equal(back.Marks, fr) || back.Time != p.Time {
			t.Fatalf("re-encoding %v: %v %v", p, back, err)
		}
	})
}
