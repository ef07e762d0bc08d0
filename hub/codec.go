package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Client operations of protocol v1.
const (
	opSub   = "sub"
	opUnsub = "unsub"
	opPub   = "pub"
	opHist  = "history"
	// opPing is answered with an ack and nothing else: a client that
	// cannot see WebSocket pings (a browser) checks the connection with it.
	opPing = "ping"
	// opRefresh replaces the connection's token with a fresh one (refresh.go).
	opRefresh = "refresh"
)

// validJSONText reports whether b is one JSON value in valid UTF-8, what a
// text frame may carry to a browser: json.Valid alone lets invalid bytes
// inside strings pass.
func validJSONText(b []byte) bool { return json.Valid(b) && utf8.Valid(b) }

// MaxChannelLen is the longest channel name, in bytes.
const MaxChannelLen = 255

// request is one decoded client frame. Its slices point into the frame,
// which the transport owns only for the duration of OnMessage.
type request struct {
	op       string
	ch       string
	data     []byte // raw JSON value, byte-exact; nil when absent
	id       uint64
	hasID    bool
	since    string // sub: the position to resume from; "" when absent
	limit    int    // history: how many messages; -1 when absent
	hasSince bool
	info     []byte // sub: raw JSON value, presence info (presence_codec.go)
	after    string // presence: list members after this user
	token    string // refresh: the new token
}

// decodeError is the error of every frame the decoder refuses; its reason
// says which part was wrong and goes to the client in err 400.
type decodeError struct{ reason string }

func (e *decodeError) Error() string { return e.reason }

func malformed(reason string) error { return &decodeError{reason: reason} }

// maxID keeps ids exact in JavaScript clients (2^53-1).
const maxID = 1<<53 - 1

// decodeRequest parses one client frame: a JSON object with "op", "ch",
// optional "id" (a non-negative integer) and, for pub, "data" (any JSON
// value, kept byte-exact). Unknown keys are ignored so later protocol
// versions can add fields; duplicate known keys are refused. A bad field
// does not stop the scan: the error is the first one found, but an "id"
// anywhere in the object is still read, so that the err answering it
// carries the id whatever the key order (a client waits on its id).
func decodeRequest(frame []byte) (request, error) {
	req := request{limit: -1}
	if !json.Valid(frame) {
		return req, malformed("frame is not valid JSON")
	}
	// From here the input is known-valid JSON, so the scanner below only
	// has to find value boundaries, not validate.
	i := skipSpace(frame, 0)
	if i >= len(frame) || frame[i] != '{' {
		return req, malformed("frame is not a JSON object")
	}
	var seen [len(fields)]bool
	var first error
	for i = skipSpace(frame, i+1); i < len(frame) && frame[i] != '}'; {
		keyEnd := skipString(frame, i)
		key, ok := unquote(frame[i:keyEnd])
		i = skipSpace(frame, keyEnd)
		i = skipSpace(frame, i+1) // ':'
		valEnd := skipValue(frame, i)
		if err := req.field(key, ok, frame[i:valEnd], &seen); err != nil && first == nil {
			first = err
		}
		i = skipSpace(frame, valEnd)
		if i < len(frame) && frame[i] == ',' {
			i = skipSpace(frame, i+1)
		}
	}
	if first == nil && !seen[0] {
		first = malformed(`missing "op"`)
	}
	return req, first
}

// field sets the known field key to val. A key seen before is an error and
// changes nothing, so the first "id" stays the one echoed.
// fields are the keys a request may have, in the order of set's slots.
var fields = [...]string{"op", "ch", "id", "data", "since", "limit", "info", "after", "token"}

func (req *request) field(key string, keyOK bool, val []byte, seen *[len(fields)]bool) error {
	if !keyOK {
		return malformed("bad key")
	}
	slot := slices.Index(fields[:], key)
	if slot < 0 {
		return nil
	}
	if seen[slot] {
		return malformed("duplicate key " + strconv.Quote(key))
	}
	seen[slot] = true
	return req.set(slot, val)
}

func (req *request) set(slot int, val []byte) error {
	switch slot {
	case 0:
		s, ok := unquote(val)
		if !ok {
			return malformed(`"op" must be a string`)
		}
		req.op = s
	case 1:
		s, ok := unquote(val)
		if !ok {
			return malformed(`"ch" must be a string`)
		}
		req.ch = s
	case 2:
		id, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil || id > maxID {
			return malformed(`"id" must be an integer from 0 to 2^53-1`)
		}
		req.id, req.hasID = id, true
	case 3:
		if jsonDepth(val) > maxDataDepth {
			return malformed(fmt.Sprintf(`"data" nested deeper than %d levels`, maxDataDepth))
		}
		req.data = val
	case 4:
		s, ok := unquote(val)
		if !ok || len(s) > maxSinceLen {
			return malformed(`"since" must be a position string`)
		}
		req.since, req.hasSince = s, true
	case 5:
		n, err := strconv.ParseUint(string(val), 10, 32)
		if err != nil {
			return malformed(`"limit" must be a non-negative integer`)
		}
		req.limit = int(min(n, MaxHistory))
	case 8:
		s, ok := unquote(val)
		if !ok {
			return malformed(`"token" must be a string`)
		}
		req.token = s
	default:
		return req.setPresence(slot, val)
	}
	return nil
}

// maxSinceLen bounds a position's text: 1,024 streams at most.
const maxSinceLen = 32 << 10

// validChannel reports why name is not a channel name, or "" if it is one.
func validChannel(name string) string {
	if len(name) == 0 {
		return "channel name is empty"
	}
	if len(name) > MaxChannelLen {
		return "channel name is longer than 255 bytes"
	}
	for i, r := range name {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(name[i:]); size == 1 {
				return "channel name is not valid UTF-8"
			}
			// A JSON escape of a lone surrogate (\ud800) decodes to
			// U+FFFD, as does any byte a decoder could not read: such
			// names would all be one channel.
			return "channel name has U+FFFD, the replacement character (a lone surrogate or a decoding error)"
		}
		if r <= ' ' || (r >= 0x7f && r <= 0x9f) {
			return "channel name has a space or control character"
		}
	}
	return ""
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the JSON value starting at b[i]. The
// input must already be valid JSON.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && !isDelimiter(b[i]) {
			i++
		}
		return i
	}
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// unquote decodes a JSON string value; ok is false for any other value.
func unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// appendQuoted appends s as a JSON string. Channel names hold no control
// characters, but ids and reasons might, so everything below 0x20 is escaped.
// Invalid UTF-8 (a string from a misbehaving peer, say) becomes U+FFFD, as
// encoding/json does: a text frame with it would make browsers close the
// connection.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, `\u00`...)
			dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size - 1
		}
	}
	return append(dst, '"')
}
