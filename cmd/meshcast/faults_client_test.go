//go:build faults

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// wsConn is a fault-suite client connection. One goroutine reads; writes
// (requests, and the pongs the reader answers pings with) are serialised
// by wmu, so a publisher may write from a second goroutine.
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	frag []byte // a fragmented text message being reassembled
}

// closeError is a close frame from the server.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("closed by the server: %d %q", e.code, e.reason)
}

// dialWS connects and reads the hello. A refused upgrade is a
// ws.StatusError (503 while a node is not ready).
func dialWS(url string) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d := ws.Dialer{Timeout: 3 * time.Second}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	c := &wsConn{conn: conn, br: br}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.read()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading hello: %w", err)
	}
	var hello struct{ Op string }
	if json.Unmarshal(b, &hello) != nil || hello.Op != "hello" {
		conn.Close()
		return nil, fmt.Errorf("first message is not hello: %s", b)
	}
	return c, nil
}

// write sends one text message, failing after 5 s (a frozen node's
// socket buffers can fill).
func (c *wsConn) write(b []byte) error {
	return c.writeFrame(ws.NewTextFrame(b))
}

func (c *wsConn) writeFrame(f ws.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return ws.WriteFrame(c.conn, ws.MaskFrame(f))
}

// read returns the next text message; it answers pings, skips pongs, and
// returns a *closeError for a close frame. No deadline: a frozen node is
// silent for as long as the scenario freezes it, and the test ends a
// connection by closing it.
func (c *wsConn) read() ([]byte, error) {
	for {
		f, err := ws.ReadFrame(c.br)
		if err != nil {
			return nil, err
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			if err := c.writeFrame(ws.NewPongFrame(f.Payload)); err != nil {
				return nil, err
			}
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.Payload)
			return nil, &closeError{code, reason}
		case ws.OpText, ws.OpContinuation:
			if b := c.assemble(f); b != nil {
				return b, nil
			}
		case ws.OpBinary:
			return nil, errors.New("unexpected binary message")
		}
	}
}

// assemble returns a complete message, or nil while fragments are missing.
func (c *wsConn) assemble(f ws.Frame) []byte {
	if f.Header.Fin && c.frag == nil {
		return f.Payload
	}
	c.frag = append(c.frag, f.Payload...)
	if !f.Header.Fin {
		return nil
	}
	b := c.frag
	c.frag = nil
	return b
}

func (c *wsConn) close() { c.conn.Close() }

// serverFrame is any message a node sends on the fault channels.
type serverFrame struct {
	Op        string `json:"op"`
	Ch        string `json:"ch"`
	ID        *int64 `json:"id"`
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Pos       string `json:"pos"`       // msg on a channel with history
	Recovered *bool  `json:"recovered"` // ack of a sub with since
	Data      struct {
		P string `json:"p"` // publisher stream
		N int    `json:"n"` // its sequence number, from 1
	} `json:"data"`
}

// The channels every scenario publishes to: one without history, and one
// in the namespace the nodes keep history for (--namespace hist:...).
const (
	faultChannel = "fault"
	histChannel  = "hist:fault"
)

// histNamespace is the flag that gives histChannel its history: a window
// that holds what a 10 s fault misses at the suite's rates.
const histNamespace = "hist:history=10000"

// subRequest subscribes to ch; since, if not empty, resumes from it.
func subRequest(ch string, id int64, since string) []byte {
	if since != "" {
		return fmt.Appendf(nil, `{"op":"sub","ch":%q,"id":%d,"since":%q}`, ch, id, since)
	}
	return fmt.Appendf(nil, `{"op":"sub","ch":%q,"id":%d}`, ch, id)
}

func pubRequest(ch, publisher string, seq int) []byte {
	return fmt.Appendf(nil, `{"op":"pub","ch":%q,"data":{"p":%q,"n":%d},"id":%d}`, ch, publisher, seq, seq)
}

// notStoredReason starts the reason of err 503 on a pub to a channel with
// history that was published but is not held by enough nodes: unlike a
// refused pub, it may reach subscribers.
const notStoredReason = "published, but not stored on enough nodes"
