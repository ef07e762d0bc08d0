package main

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/gobwas/ws"
)

// protoSocketIO speaks Socket.IO v4 over Engine.IO v4, WebSocket transport
// only, with the event names of the comparison server (peer/server.js):
// "join" with a room name, and "msg" carrying {"room":..., "data":...} both
// ways. The join asks for an acknowledgement (42<id>["join",room], answered
// 43<id>[]): a plain join has none, and waiting a fixed time instead would
// either waste time or publish before every subscriber is in its room.
type protoSocketIO struct{}

// wsURL points a bare ws://host:port (or .../ws) at the Engine.IO endpoint.
func (protoSocketIO) wsURL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if !strings.Contains(u.Path, "socket.io") {
		u.Path = "/socket.io/"
	}
	q := u.Query()
	q.Set("EIO", "4")
	q.Set("transport", "websocket")
	u.RawQuery = q.Encode()
	return u.String()
}

// open reads the Engine.IO open packet ("0{...}"), connects to the default
// namespace ("40") and waits for the server's "40{...}".
func (p protoSocketIO) open(c *wsConn) error {
	sawOpen := false
	for {
		op, msg, err := c.fr.next()
		if err != nil {
			return fmt.Errorf("socket.io open: %w", err)
		}
		if op.IsControl() {
			if closed, code := c.handleControl(op, msg); closed {
				return fmt.Errorf("socket.io open: closed with %d: %w", code, errBadFrame)
			}
			continue
		}
		switch {
		case !sawOpen && len(msg) > 0 && msg[0] == '0':
			sawOpen = true
			if err := c.write(ws.OpText, []byte("40")); err != nil {
				return fmt.Errorf("socket.io connect: %w", err)
			}
		case sawOpen && bytes.HasPrefix(msg, []byte("40")):
			return nil
		case sawOpen && bytes.HasPrefix(msg, []byte("44")):
			return fmt.Errorf("socket.io connect refused: %s: %w", msg, errBadFrame)
		case len(msg) == 1 && msg[0] == '2':
			if err := c.write(ws.OpText, p.pong()); err != nil {
				return err
			}
		}
	}
}

func (protoSocketIO) pong() []byte { return []byte("3") }

func (protoSocketIO) next(frame []byte) (msg, rest []byte) { return frame, nil }

func (protoSocketIO) appendSub(dst, chq []byte, id uint64) []byte {
	dst = append(dst, "42"...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `["join",`...)
	dst = append(dst, chq...)
	return append(dst, ']')
}

func (protoSocketIO) appendPub(dst, chq []byte, _ uint64, data []byte) []byte {
	dst = append(dst, `42["msg",{"room":`...)
	dst = append(dst, chq...)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, `}]`...)
}

func (protoSocketIO) kind(msg []byte) msgKind {
	if len(msg) == 0 {
		return kindOther
	}
	switch {
	case msg[0] == '2':
		return kindPing
	case bytes.HasPrefix(msg, []byte(`42["msg"`)):
		return kindMsg
	case bytes.HasPrefix(msg, []byte("43")):
		return kindAck
	case bytes.HasPrefix(msg, []byte("44")):
		return kindErr
	}
	return kindOther
}
