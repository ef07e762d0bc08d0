package hub

import (
	"strconv"
	"strings"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/transport"
)

// Server-to-client frames. Each is built once, WebSocket header included,
// so a msg frame can go to every local recipient as the same bytes.

const (
	msgPrefix = `{"op":"msg","ch":`
	msgPos    = `,"pos":`
	msgMiddle = `,"data":`
)

// msgFrame builds the frame of one delivery (with its position, on a
// channel with history) and returns it with the sub-slice that holds
// data, which the relay may keep (frames are never modified once built).
func msgFrame(ch string, data []byte, pos string) (frame, dataInFrame []byte) {
	n := len(msgPrefix) + quotedLen(ch) + len(msgMiddle) + len(data) + 1
	if pos != "" {
		n += len(msgPos) + quotedLen(pos)
	}
	frame, payload := transport.NewTextFrame(n)
	p := append(payload[:0], msgPrefix...)
	p = appendQuoted(p, ch)
	if pos != "" {
		p = append(p, msgPos...)
		p = appendQuoted(p, pos)
	}
	p = append(p, msgMiddle...)
	start := len(p)
	p = append(p, data...)
	p = append(p, '}')
	off := len(frame) - len(payload)
	return frame, frame[off+start : off+start+len(data)]
}

func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// textFrame wraps a small payload built with append.
func textFrame(payload []byte) []byte {
	frame, p := transport.NewTextFrame(len(payload))
	copy(p, payload)
	return frame
}

// helloFrame names the connection and its node, and its user when it
// has one (a token's sub or the Authorize hook's user). max_message is the
// largest message the node reads: over it the node closes the connection
// (1009), so a client refuses such a request itself and keeps the
// connection and its subscriptions.
func helloFrame(client, node, user string, maxMessage int, expires time.Time) []byte {
	b := make([]byte, 0, 96+len(client)+len(node)+len(user))
	b = append(b, `{"op":"hello","client":`...)
	b = appendQuoted(b, client)
	b = append(b, `,"node":`...)
	b = appendQuoted(b, node)
	if user != "" {
		b = append(b, `,"user":`...)
		b = appendQuoted(b, user)
	}
	b = append(b, `,"max_message":`...)
	b = strconv.AppendInt(b, int64(maxMessage), 10)
	b = appendExpires(b, expires)
	b = append(b, '}')
	return textFrame(b)
}

// appendExpires appends `,"expires":<unix seconds>,"ttl":<seconds left>`
// unless expires is zero: when the connection's token expires, so that a
// client refreshes it before; ttl lets it count on its own clock, whatever
// that clock's error.
func appendExpires(b []byte, expires time.Time) []byte {
	if expires.IsZero() {
		return b
	}
	b = append(b, `,"expires":`...)
	b = strconv.AppendInt(b, expires.Unix(), 10)
	b = append(b, `,"ttl":`...)
	return strconv.AppendInt(b, max(expires.Unix()-time.Now().Unix(), 0), 10)
}

// refreshAckFrame acks a refresh with the connection's new expiry.
func refreshAckFrame(id uint64, expires time.Time) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"op":"ack","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = appendExpires(b, expires)
	b = append(b, '}')
	return textFrame(b)
}

func ackFrame(id uint64) []byte {
	b := make([]byte, 0, 40)
	b = append(b, `{"op":"ack","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, '}')
	return textFrame(b)
}

// ackPosFrame acks a sub on a channel with history with the position it
// starts at.
func ackPosFrame(id uint64, pos string) []byte {
	b := make([]byte, 0, 48+len(pos))
	b = append(b, `{"op":"ack","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"pos":"`...)
	b = append(b, pos...) // "p1." and base64url: nothing to escape
	b = append(b, `"}`...)
	return textFrame(b)
}

// recoveredAckFrame acks a sub with since, saying whether everything
// missed since that position was sent.
func recoveredAckFrame(id uint64, hasID, recovered bool) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"op":"ack",`...)
	if hasID {
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, ',')
	}
	b = append(b, `"recovered":`...)
	b = strconv.AppendBool(b, recovered)
	b = append(b, '}')
	return textFrame(b)
}

// historyFrame answers a history request: msgs oldest first, each with
// the position to resume from after it.
func historyFrame(id uint64, hasID bool, ch string, msgs []history.Msg, pos []string) []byte {
	n := 48 + len(ch)
	for i, m := range msgs {
		n += 24 + len(m.Data) + len(pos[i])
	}
	b := make([]byte, 0, n)
	b = append(b, `{"op":"history",`...)
	if hasID {
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, ',')
	}
	b = append(b, `"ch":`...)
	b = appendQuoted(b, ch)
	b = append(b, `,"msgs":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"pos":`...)
		b = appendQuoted(b, pos[i])
		b = append(b, `,"data":`...)
		b = append(b, m.Data...)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	return textFrame(b)
}

// gapFrame tells a subscriber it may have missed publishes on ch.
func gapFrame(ch string) []byte {
	b := make([]byte, 0, 24+len(ch))
	b = append(b, `{"op":"gap","ch":`...)
	b = appendQuoted(b, ch)
	b = append(b, '}')
	return textFrame(b)
}

// Error codes of protocol v1, HTTP-like so they read at a glance.
const (
	CodeBadRequest  = 400 // malformed frame, unknown op, bad channel name
	CodeForbidden   = 403 // a hook refused
	CodeTooLarge    = 413 // data over Config.MaxDataSize
	CodeRateLimited = 429 // over a limit (subscriptions per connection, publish rate)
	CodeUnavailable = 503 // the node is not a member in good standing of its cluster
)

func errFrame(req *request, code int, reason string) []byte {
	b := make([]byte, 0, 64+len(reason))
	b = append(b, `{"op":"err",`...)
	if req != nil && req.hasID {
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, req.id, 10)
		b = append(b, ',')
	}
	b = append(b, `"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"reason":`...)
	b = appendQuoted(b, strings.ToValidUTF8(reason, "\uFFFD"))
	b = append(b, '}')
	return textFrame(b)
}
