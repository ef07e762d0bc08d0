package hub

import (
	"strings"
	"testing"
)

var patternCases = []struct {
	pattern, ch string
	match       bool
}{
	{"chat:*", "chat:lobby", true},
	{"chat:*", "chat:", true},
	{"chat:*", "chat", false},
	{"chat:*", "chat:a:b", false},
	{"chat:*", "news:lobby", false},
	{"chat:*:en", "chat:lobby:en", true},
	{"chat:*:en", "chat:lobby:fr", false},
	{"*", "lobby", true},
	{"*", "chat:lobby", false},
	{"*:*", "chat:lobby", true},
	{"*:*", "user:#ann", true},
	{"lobby", "lobby", true},
	{"lobby", "lobby2", false},
	{"room*", "room1", false}, // '*' inside a segment is literal
	{"room*", "room*", true},
	{"", "", true},
	{":", ":", true},
	{"*:", "a:", true},
	{"*:", "a:b", false},
	{"a:b:c", "a:b:c", true},
	{"a:b:c", "a:b", false},
	{"a:b", "a:b:c", false},
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range patternCases {
		if got := MatchPattern(tc.pattern, tc.ch); got != tc.match {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tc.pattern, tc.ch, got, tc.match)
		}
		if got := matchReference(tc.pattern, tc.ch); got != tc.match {
			t.Errorf("reference(%q, %q) = %v, want %v", tc.pattern, tc.ch, got, tc.match)
		}
	}
}

func TestNamespaceOf(t *testing.T) {
	for ch, ns := range map[string]string{"chat:lobby": "chat", "lobby": "", "user:#ann": "user", ":x": "", "a:b:c": "a"} {
		if got := NamespaceOf(ch); got != ns {
			t.Errorf("NamespaceOf(%q) = %q, want %q", ch, got, ns)
		}
	}
}

func TestPersonalUsers(t *testing.T) {
	for _, tc := range []struct {
		ch, user string
		personal bool
		allowed  bool
	}{
		{"user:#ann", "ann", true, true},
		{"user:#ann", "bob", true, false},
		{"user:#ann", "", true, false},
		{"dm:#ann,bob", "bob", true, true},
		{"dm:#ann,bob", "an", true, false},
		{"#ann:inbox", "ann", true, true},
		{"user:#", "", true, false},
		{"chat:lobby", "ann", false, false},
	} {
		users, ok := personalUsers(tc.ch)
		if ok != tc.personal || (ok && personalAllows(users, tc.user) != tc.allowed) {
			t.Errorf("%q for %q: personal=%v allowed=%v", tc.ch, tc.user, ok, personalAllows(users, tc.user))
		}
	}
}

func TestMatchPatternAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { MatchPattern("chat:*:en", "chat:lobby:en") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// matchReference is the definition, written the obvious way.
func matchReference(pattern, ch string) bool {
	p, c := strings.Split(pattern, ":"), strings.Split(ch, ":")
	if len(p) != len(c) {
		return false
	}
	for i := range p {
		if p[i] != "*" && p[i] != c[i] {
			return false
		}
	}
	return true
}

func FuzzMatchPattern(f *testing.F) {
	for _, tc := range patternCases {
		f.Add(tc.pattern, tc.ch)
	}
	f.Fuzz(func(t *testing.T, pattern, ch string) {
		if got, want := MatchPattern(pattern, ch), matchReference(pattern, ch); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, reference %v", pattern, ch, got, want)
		}
		if !strings.Contains(pattern, "*") && MatchPattern(pattern, ch) != (pattern == ch) {
			t.Fatalf("pattern without * must match only itself: %q %q", pattern, ch)
		}
	})
}
