package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Error is an err frame of the server, answering a request: the request
// was not done. Codes: 400 malformed, 403 not allowed, 413 too large, 429
// over a limit, 503 the node is not a member in good standing.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return "meshcast: " + strconv.Itoa(e.Code) + " " + e.Reason }

// CloseError is the server's close code when it ends the client for good:
// 4003 (disconnected by the server), or 4001 (token expired) without
// Config.GetToken.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "meshcast: closed by the server: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// Errors callers branch on.
var (
	ErrClosed         = errors.New("client: closed")
	ErrConnectionLost = errors.New("client: connection lost before the answer: the request may or may not have been done")
	ErrDuplicate      = errors.New("client: already subscribed to this channel")
	ErrBadData        = errors.New("client: data is not one valid JSON value in UTF-8")
	// ErrBadChannel: the JSON encoder would send another name (U+FFFD for
	// each bad byte); other bad names get the server's *Error 400.
	ErrBadChannel = errors.New("client: channel name is not valid UTF-8")
	// ErrRefresh wraps why a token refresh on the live connection failed
	// (an EventError): GetToken's error, the node's *Error, or no answer
	// within RequestTimeout.
	ErrRefresh = errors.New("client: token refresh failed")
)

// serverFrame is any frame the server sends; fields by op.
type serverFrame struct {
	Op        string           `json:"op"`
	ID        *uint64          `json:"id"`
	Ch        string           `json:"ch"`
	Data      json.RawMessage  `json:"data"`
	Pos       string           `json:"pos"`
	Code      int              `json:"code"`
	Reason    string           `json:"reason"`
	Recovered bool             `json:"recovered"`
	Msgs      []HistoryMessage `json:"msgs"`
	Client    string           `json:"client"`
	Node      string           `json:"node"`
	User      string           `json:"user"`
	// MaxMessage (hello) is the largest message the node reads; 0 from a
	// node that does not say.
	MaxMessage int `json:"max_message"`
	// Expires (hello, and the ack of a refresh) is when the connection's
	// identity expires, in Unix seconds; 0 when it does not (refresh.go).
	Expires int64 `json:"expires"`
	// TTL, with Expires, is the seconds left until then by the node's clock:
	// the client counts from it, so that its own clock's error does not
	// move the refresh (nil from a node that does not say).
	TTL *int64 `json:"ttl"`
	// The fields of presence answers and join events (presence.go).
	presenceFields
}

// HistoryMessage is one message of a channel's history.
type HistoryMessage struct {
	Data json.RawMessage `json:"data"`
	Pos  string          `json:"pos"`
}

// decodeFrame parses one text message of the server. Unknown fields and
// ops are the business of later protocol versions: they pass.
func decodeFrame(b []byte) (*serverFrame, error) {
	var f serverFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("client: bad frame from the server: %w", err)
	}
	if f.Op == "" {
		return nil, errors.New("client: bad frame from the server: no op")
	}
	return &f, nil
}

// request is one client frame. Data goes out byte-exact (json.Marshal
// would compact a RawMessage), so frames are appended by hand.
type request struct {
	op, ch, since string
	data          []byte
	limit         int
	info          []byte // sub: presence info
	after         string // presence: the members after this user
	token         string // refresh: the new token
}

func (r request) encode(id uint64) []byte {
	b := make([]byte, 0, 48+len(r.ch)+len(r.data)+len(r.since))
	b = append(b, `{"op":"`...)
	b = append(b, r.op...)
	b = append(b, '"')
	if r.op != "refresh" { // the one op not about a channel
		b = append(b, `,"ch":`...)
		b = appendString(b, r.ch)
	}
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, id, 10)
	if r.since != "" {
		b = append(b, `,"since":`...)
		b = appendString(b, r.since)
	}
	if r.limit > 0 {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(r.limit), 10)
	}
	if r.data != nil {
		b = append(b, `,"data":`...)
		b = append(b, r.data...)
	}
	if r.info != nil {
		b = append(b, `,"info":`...)
		b = append(b, r.info...)
	}
	if r.after != "" {
		b = append(b, `,"after":`...)
		b = appendString(b, r.after)
	}
	if r.token != "" {
		b = append(b, `,"token":`...)
		b = appendString(b, r.token)
	}
	return append(b, '}')
}

// validJSON reports whether b is one JSON value in valid UTF-8: the
// server closes a connection that sends anything else in a text frame
// (1007), which json.Valid alone lets through.
func validJSON(b []byte) bool { return json.Valid(b) && utf8.Valid(b) }

// checkChannel refuses a name that would not reach the server as given.
func checkChannel(ch string) error {
	if !utf8.ValidString(ch) {
		return fmt.Errorf("%w: %q", ErrBadChannel, ch)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
