package main

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"

	"github.com/gobwas/ws"
)

// protoCentrifugo speaks Centrifugo's bidirectional JSON client protocol
// (protocol v2, the one of Centrifugo v4 and later) over WebSocket at
// /connection/websocket, as an anonymous client: peer/centrifugo.json lets
// clients connect without a token and subscribe and publish in channels
// without a namespace, the counterpart of meshcast without token flags and
// of the Socket.IO peer, which has no authentication at all.
//
// Commands and replies:
//
//	{"id":1,"connect":{}}                         -> {"id":1,"connect":{"client":...,"ping":25,"pong":true}}
//	{"id":N,"subscribe":{"channel":"c"}}          -> {"id":N,"subscribe":{}}
//	{"id":N,"publish":{"channel":"c","data":{..}}} -> {"id":N,"publish":{}}
//	push: {"push":{"channel":"c","pub":{"data":{..},"info":{..}}}}
//	ping: {} (the server's, every 25 s), answered with {}
//	error: {"id":N,"error":{"code":103,"message":"permission denied"}}
//
// Publishing is a client publish over the same WebSocket, as meshcast's
// and Socket.IO's publishers do, not the server HTTP API. The server
// packs several messages into one frame, separated by '\n' (its write
// coalescing); next splits them without copying.
type protoCentrifugo struct{}

// cfConnectID is the id of the connect command; the ids the callers pass
// to appendSub and appendPub are shifted by one so that no later command
// reuses it.
const cfConnectID = 1

func (protoCentrifugo) wsURL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if u.Path == "" || u.Path == "/" || u.Path == "/ws" {
		u.Path = "/connection/websocket"
	}
	return u.String()
}

// open sends the connect command and reads until its reply.
func (p protoCentrifugo) open(c *wsConn) error {
	if err := c.write(ws.OpText, []byte(`{"id":1,"connect":{}}`)); err != nil {
		return fmt.Errorf("centrifugo connect: %w", err)
	}
	for {
		op, frame, err := c.fr.next()
		if err != nil {
			return fmt.Errorf("centrifugo connect: %w", err)
		}
		if op.IsControl() {
			if closed, code := c.handleControl(op, frame); closed {
				return fmt.Errorf("centrifugo connect: closed with %d: %w", code, errBadFrame)
			}
			continue
		}
		for rest := frame; len(rest) > 0; {
			var msg []byte
			msg, rest = p.next(rest)
			switch p.kind(msg) {
			case kindAck:
				if id, ok := cfReplyID(msg); ok && id == cfConnectID {
					return nil
				}
			case kindErr:
				return fmt.Errorf("centrifugo connect refused: %.200s: %w", msg, errBadFrame)
			case kindPing:
				if err := c.write(ws.OpText, p.pong()); err != nil {
					return err
				}
			}
		}
	}
}

func (protoCentrifugo) pong() []byte { return []byte("{}") }

func (protoCentrifugo) appendSub(dst, chq []byte, id uint64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id+cfConnectID, 10)
	dst = append(dst, `,"subscribe":{"channel":`...)
	dst = append(dst, chq...)
	return append(dst, `}}`...)
}

func (protoCentrifugo) appendPub(dst, chq []byte, id uint64, data []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id+cfConnectID, 10)
	dst = append(dst, `,"publish":{"channel":`...)
	dst = append(dst, chq...)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, `}}`...)
}

var (
	cfPushPub = []byte(`{"push":{"channel":`)
	cfReply   = []byte(`{"id":`)
	cfError   = []byte(`,"error":`)
	cfPub     = []byte(`,"pub":`)
)

// kind classifies one message (after next). Only a publication push is a
// delivery; other pushes (disconnect, unsubscribe, join/leave) have no
// channel first or carry no publication and count as other.
func (protoCentrifugo) kind(msg []byte) msgKind {
	switch {
	case len(msg) == 2 && msg[0] == '{' && msg[1] == '}':
		return kindPing
	case bytes.HasPrefix(msg, cfPushPub):
		// Skip the channel name (a JSON string; the bench's names need no
		// escapes) and look at the next key only: no scan of the payload.
		rest := msg[len(cfPushPub):]
		if len(rest) > 0 && rest[0] == '"' {
			if i := bytes.IndexByte(rest[1:], '"'); i >= 0 && bytes.HasPrefix(rest[i+2:], cfPub) {
				return kindMsg
			}
		}
		return kindOther
	case bytes.HasPrefix(msg, cfReply):
		i := len(cfReply)
		for i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
			i++
		}
		if bytes.HasPrefix(msg[i:], cfError) {
			return kindErr
		}
		return kindAck
	}
	return kindOther
}

// next returns the first '\n'-separated message of frame and the rest.
func (protoCentrifugo) next(frame []byte) (msg, rest []byte) {
	if i := bytes.IndexByte(frame, '\n'); i >= 0 {
		return frame[:i], frame[i+1:]
	}
	return frame, nil
}

// cfReplyID returns the id of a reply, {"id":N,...}.
func cfReplyID(msg []byte) (uint64, bool) {
	if !bytes.HasPrefix(msg, cfReply) {
		return 0, false
	}
	var v uint64
	n := 0
	for _, c := range msg[len(cfReply):] {
		if c < '0' || c > '9' || n == 20 {
			break
		}
		v = v*10 + uint64(c-'0')
		n++
	}
	return v, n > 0 && n < 20
}
