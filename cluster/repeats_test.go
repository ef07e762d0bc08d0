package cluster

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMemberlistWarningsAreSampled: memberlist repeating one warning every
// gossip round (a member advertising an address this node cannot reach)
// is one WARN line per 10 s with the count of those lowered to debug
// between, not five lines a second; another kind of warning is not held
// back by it.
func TestMemberlistWarningsAreSampled(t *testing.T) {
	var out syncBuffer
	var lp atomic.Pointer[slog.Logger]
	lp.Store(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	now := time.Unix(1000, 0)
	w := slogWriter{lp: &lp, junk: newJunkLog(), repeats: newRepeats(), now: func() time.Time { return now }}
	gossip := "[WARN] memberlist: Failed to send gossip to [fd00::2]:7946: write udp 127.0.0.1:7946->[fd00::2]:7946: address fd00::2: non-IPv4 address\n"
	for range 50 { // 10 s of gossip rounds
		_, _ = w.Write([]byte(gossip))
		now = now.Add(200 * time.Millisecond)
	}
	_, _ = w.Write([]byte("[WARN] memberlist: Push/Pull with n2 failed: EOF\n"))
	_, _ = w.Write([]byte(gossip))
	warns := linesWith(out.lines(), "level=WARN", "Failed to send gossip")
	if len(warns) != 2 || strings.Contains(warns[0], "repeated_since_last") || !strings.Contains(warns[1], "repeated_since_last=49") {
		t.Fatalf("WARN lines of the repeated warning:\n%s\nwant 2, the second with repeated_since_last=49", strings.Join(warns, "\n"))
	}
	if n := len(linesWith(out.lines(), "level=DEBUG", "Failed to send gossip")); n != 49 {
		t.Fatalf("%d at debug, want 49", n)
	}
	if len(linesWith(out.lines(), "level=WARN", "Push/Pull with n2 failed")) != 1 {
		t.Fatalf("another warning held back:\n%s", strings.Join(out.lines(), "\n"))
	}
}

func TestRepeatKind(t *testing.T) {
	for line, want := range map[string]string{
		"Failed to send gossip to [fd00::2]:7946: non-IPv4 address": "Failed to send gossip",
		"Push/Pull with n2 failed: EOF":                             "Push/Pull with n2 failed:",
		"Failed fallback TCP ping: timeout 1s":                      "Failed fallback TCP ping:",
		"Conflicting address for n1. Mine: ...":                     "Conflicting address for n1.",
	} {
		if got := repeatKind(line); got != want {
			t.Errorf("repeatKind(%q) = %q, want %q", line, got, want)
		}
	}
}

// linesWith returns the lines that contain every one of subs.
func linesWith(lines []string, subs ...string) []string {
	var out []string
next:
	for _, l := range lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}
