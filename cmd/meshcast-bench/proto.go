package main

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// msgKind classifies a server text message.
type msgKind uint8

const (
	kindOther msgKind = iota
	kindHello
	kindAck
	kindErr
	kindMsg
	kindPing // an application-level ping the client must answer (Engine.IO "2")
)

// protocol is what differs between meshcast v1, Socket.IO and Centrifugo
// on the wire; the connection handling and counting are shared.
type protocol interface {
	// wsURL turns a --urls entry into the URL to dial.
	wsURL(base string) string
	// open runs the exchange after the WebSocket handshake, before the
	// first subscribe.
	open(c *wsConn) error
	appendSub(dst, chq []byte, id uint64) []byte
	// appendPub appends a publish frame around data.
	appendPub(dst, chq []byte, id uint64, data []byte) []byte
	kind(msg []byte) msgKind
	// pong is the answer to a kindPing message.
	pong() []byte
	// next splits a text frame into its first message and the rest; only
	// Centrifugo puts several messages in one frame.
	next(frame []byte) (msg, rest []byte)
}

func protocolByName(name string) (protocol, error) {
	switch name {
	case "", "v1", "meshcast":
		return protoV1{}, nil
	case "socketio", "socket.io":
		return protoSocketIO{}, nil
	case "centrifugo":
		return protoCentrifugo{}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (want v1, socketio or centrifugo)", name)
}

// quoteJSON returns s as a JSON string; channels are quoted once per
// connection, not per publish.
func quoteJSON(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// protoV1 is the meshcast client protocol v1.
type protoV1 struct{}

func (protoV1) wsURL(base string) string { return base }
func (protoV1) open(*wsConn) error       { return nil }
func (protoV1) pong() []byte             { return nil }

func (protoV1) next(frame []byte) (msg, rest []byte) { return frame, nil }

func (protoV1) appendSub(dst, chq []byte, id uint64) []byte {
	dst = append(dst, `{"op":"sub","ch":`...)
	dst = append(dst, chq...)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	return append(dst, '}')
}

func (protoV1) appendPub(dst, chq []byte, id uint64, data []byte) []byte {
	dst = append(dst, `{"op":"pub","ch":`...)
	dst = append(dst, chq...)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

func (protoV1) kind(msg []byte) msgKind {
	switch opOf(msg) {
	case 'm':
		return kindMsg
	case 'a':
		return kindAck
	case 'e':
		return kindErr
	case 'h':
		return kindHello
	}
	return kindOther
}
