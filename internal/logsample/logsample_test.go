package logsample

import (
	"log/slog"
	"testing"
	"time"
)

type kind struct {
	code   int
	reason string
}

// After the window the next event of a kind is logged with the number
// lowered meanwhile; kinds are counted apart.
func TestSaysWhatItLeftOut(t *testing.T) {
	const window = 10 * time.Second
	s := Sampler[kind]{Window: window}
	full, origin := kind{503, "full"}, kind{403, "origin"}
	t0 := time.Now()
	for i, c := range []struct {
		k       kind
		at      time.Duration
		log     bool
		lowered uint64
	}{
		{full, 0, true, 0},
		{full, time.Second, false, 0},
		{origin, time.Second, true, 0},
		{full, 2 * time.Second, false, 0},
		{full, window, true, 2},
		{full, window + time.Second, false, 0},
		{origin, 3 * window, true, 0},
	} {
		ok, n := s.Take(c.k, t0.Add(c.at))
		if ok != c.log || n != c.lowered {
			t.Fatalf("event %d: logged %v with %d lowered, want %v with %d", i, ok, n, c.log, c.lowered)
		}
	}
}

// Past MaxKinds the kinds are forgotten rather than kept growing: a kind
// seen before is then logged again at once.
func TestMaxKinds(t *testing.T) {
	s := Sampler[int]{Window: time.Hour, MaxKinds: 2}
	now := time.Now()
	for k := range 3 {
		if ok, _ := s.Take(k, now); !ok {
			t.Fatalf("kind %d: lowered, want logged (first of its kind)", k)
		}
	}
	if len(s.kinds) != 1 {
		t.Fatalf("%d kinds kept, want 1 (forgotten at the third)", len(s.kinds))
	}
	if ok, _ := s.Take(0, now); !ok {
		t.Fatal("a forgotten kind lowered")
	}
}

func TestApply(t *testing.T) {
	s := Sampler[string]{Window: time.Minute}
	now := time.Now()
	if lv, attrs := s.Apply("a", now, slog.LevelWarn, "n", nil); lv != slog.LevelWarn || len(attrs) != 0 {
		t.Fatalf("first: %v %v", lv, attrs)
	}
	if lv, _ := s.Apply("a", now, slog.LevelWarn, "n", nil); lv != slog.LevelDebug {
		t.Fatalf("second within the window: %v, want debug", lv)
	}
	lv, attrs := s.Apply("a", now.Add(time.Minute), slog.LevelWarn, "n", nil)
	if lv != slog.LevelWarn || len(attrs) != 1 || attrs[0].Key != "n" || attrs[0].Value.Uint64() != 1 {
		t.Fatalf("after the window: %v %v, want warn with n=1", lv, attrs)
	}
}
