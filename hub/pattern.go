package hub

import "strings"

// Channel names are split into segments at ':' for permissions:
// "chat:room:42" has the segments "chat", "room" and "42", and its
// namespace is the first segment when there is more than one ("chat").
// A name without ':' is in the default namespace "".

// NamespaceOf returns the namespace of a channel: the text before its first
// ':', or "" when it has none. "chat:lobby" is in "chat", "lobby" in "".
func NamespaceOf(ch string) string {
	if i := strings.IndexByte(ch, ':'); i >= 0 {
		return ch[:i]
	}
	return ""
}

// MatchPattern reports whether channel ch matches pattern. Both are split
// at ':' into segments and must have the same number of segments. A
// pattern segment that is exactly "*" matches any one segment, including
// an empty one; every other segment matches only itself, byte for byte
// ("*" inside a longer segment, as in "room*", is an ordinary character).
// There is no multi-segment wildcard, so
//
//	"chat:*"    matches "chat:lobby", "chat:" — not "chat", "chat:a:b"
//	"chat:*:en" matches "chat:lobby:en"     — not "chat:lobby:fr"
//	"*"         matches "lobby"             — not "chat:lobby"
//	"*:*"       matches "chat:lobby", "user:#ann"
//
// It allocates nothing.
func MatchPattern(pattern, ch string) bool {
	for {
		pi := strings.IndexByte(pattern, ':')
		ci := strings.IndexByte(ch, ':')
		if (pi < 0) != (ci < 0) {
			return false // different number of segments
		}
		if pi < 0 {
			return pattern == "*" || pattern == ch
		}
		if seg := pattern[:pi]; seg != "*" && seg != ch[:ci] {
			return false
		}
		pattern, ch = pattern[pi+1:], ch[ci+1:]
	}
}

// matchAny reports whether ch matches one of patterns.
func matchAny(patterns []string, ch string) bool {
	for _, p := range patterns {
		if MatchPattern(p, ch) {
			return true
		}
	}
	return false
}

// personalUsers returns the user list of a personal channel and whether
// ch is one. A channel is personal when a segment contains '#': the text
// after the '#' up to the end of that segment is a comma-separated list of
// the users who may subscribe ("user:#ann", "dm:#ann,bob", "#ann").
func personalUsers(ch string) (users string, ok bool) {
	i := strings.IndexByte(ch, '#')
	if i < 0 {
		return "", false
	}
	rest := ch[i+1:]
	if j := strings.IndexByte(rest, ':'); j >= 0 {
		rest = rest[:j]
	}
	return rest, true
}

// personalAllows reports whether user is in a personal channel's list.
// The anonymous user "" is never in it.
func personalAllows(users, user string) bool {
	if user == "" {
		return false
	}
	for users != "" {
		u := users
		if i := strings.IndexByte(users, ','); i >= 0 {
			u, users = users[:i], users[i+1:]
		} else {
			users = ""
		}
		if u == user {
			return true
		}
	}
	return false
}
