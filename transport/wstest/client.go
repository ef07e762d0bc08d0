// Package wstest is a real WebSocket client for tests over loopback: it
// speaks frames directly (gobwas/ws), so a test can send what a browser
// would and also what a broken or hostile client would, and read every
// frame the server sends, control frames included.
package wstest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"github.com/meshcast/meshcast/internal/wait"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Client is one connection. Its methods fail the test on error, except
// those that return one.
type Client struct {
	T     testing.TB
	Conn  net.Conn
	R     *bufio.Reader
	Hello map[string]any // the server's first message, when Dial read it
}

// Dial connects and reads the meshcast hello.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c := DialRaw(t, url, nil)
	if err := json.Unmarshal(c.ReadText(), &c.Hello); err != nil || c.Hello["op"] != "hello" {
		t.Fatalf("first message is not hello: %v %v", c.Hello, err)
	}
	return c
}

// DialRaw connects and reads nothing.
func DialRaw(t testing.TB, url string, hdr http.Header) *Client {
	t.Helper()
	c, err := TryDial(url, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.T = t
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// TryDial connects and returns the error, for tests of refused upgrades:
// a ws.StatusError carries the HTTP status. The caller closes the Conn.
func TryDial(url string, hdr http.Header) (*Client, error) {
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(hdr), Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return &Client{Conn: conn, R: br}, nil
}

// UpgradeStatus makes an upgrade request and returns its HTTP status (101
// when it succeeded).
func UpgradeStatus(t testing.TB, url string, hdr http.Header) int {
	t.Helper()
	c, err := TryDial(url, hdr)
	if err == nil {
		c.Conn.Close()
		return http.StatusSwitchingProtocols
	}
	var se ws.StatusError
	if errors.As(err, &se) {
		return int(se)
	}
	t.Fatalf("dial %s: %v", url, err)
	return 0
}

// WriteText sends one masked text frame and returns the error.
func (c *Client) WriteText(s string) error {
	return ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewTextFrame([]byte(s))))
}

// SendText sends one masked text frame.
func (c *Client) SendText(s string) {
	c.T.Helper()
	if err := c.WriteText(s); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// SendFrame masks f and sends it.
func (c *Client) SendFrame(f ws.Frame) {
	c.T.Helper()
	if err := ws.WriteFrame(c.Conn, ws.MaskFrame(f)); err != nil {
		c.T.Fatalf("write frame: %v", err)
	}
}

// ReadFrame reads one server frame, with a 10 s deadline.
func (c *Client) ReadFrame() (ws.Frame, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return ws.ReadFrame(c.R)
}

// ReadText returns the next text message, skipping pings and pongs; a
// close frame fails the test.
func (c *Client) ReadText() []byte {
	c.T.Helper()
	for {
		f, err := c.ReadFrame()
		if err != nil {
			c.T.Fatalf("read: %v", err)
		}
		switch f.Header.OpCode {
		case ws.OpText:
			return f.Payload
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.Payload)
			c.T.Fatalf("unexpected close %d %q", code, reason)
		}
	}
}

// ReadJSON returns the next text message decoded.
func (c *Client) ReadJSON() map[string]any {
	c.T.Helper()
	var m map[string]any
	b := c.ReadText()
	if err := json.Unmarshal(b, &m); err != nil {
		c.T.Fatalf("server sent invalid JSON %q: %v", b, err)
	}
	return m
}

// ExpectClose reads until a close frame and returns its code and reason.
func (c *Client) ExpectClose() (ws.StatusCode, string) {
	c.T.Helper()
	for {
		f, err := c.ReadFrame()
		if err != nil {
			c.T.Fatalf("connection ended without a close frame: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			return ws.ParseCloseFrameData(f.Payload)
		}
	}
}

// ExpectEOF checks the server closed the TCP connection.
func (c *Client) ExpectEOF() {
	c.T.Helper()
	for {
		_, err := c.ReadFrame()
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
			c.T.Fatalf("want EOF, got %v", err)
		}
		return
	}
}

// RoundTrip sends a request and returns the next message.
func (c *Client) RoundTrip(req string) map[string]any {
	c.T.Helper()
	c.SendText(req)
	return c.ReadJSON()
}

// MustAck sends a request whose next answer must be an ack.
func (c *Client) MustAck(req string) {
	c.T.Helper()
	if m := c.RoundTrip(req); m["op"] != "ack" {
		c.T.Fatalf("%s: want ack, got %v", req, m)
	}
}

// WaitFor polls cond until it holds, failing the test after timeout.
var WaitFor = wait.For
