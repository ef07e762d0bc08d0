package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// writeTimeout bounds every client write: a server that stops reading must
// not hang the bench past its own deadline.
const writeTimeout = 10 * time.Second

// wsConn is one client WebSocket: reads happen on the owning goroutine
// only; writes may come from two goroutines (a publisher and its reader
// answering pings), hence wmu.
type wsConn struct {
	nc net.Conn
	fr frameReader

	wmu  sync.Mutex
	wbuf []byte
	mask uint32 // xorshift state for mask keys
}

// dialWS opens a WebSocket to rawURL, binding to src when it is non-nil,
// and returns it with a reader of readBuf bytes that also holds whatever
// the server sent right after its handshake (often the hello frame).
func dialWS(ctx context.Context, rawURL string, src *net.TCPAddr, readBuf int, timeout time.Duration) (*wsConn, error) {
	nd := &net.Dialer{Timeout: timeout}
	if src != nil {
		nd.LocalAddr = src // only set when non-nil: a typed nil would break Dial
	}
	d := ws.Dialer{Timeout: timeout, NetDial: nd.DialContext}
	nc, br, _, err := d.Dial(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", rawURL, err)
	}
	var rd io.Reader = nc
	if br != nil {
		pre, _ := br.Peek(br.Buffered())
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(pre)), nc)
		ws.PutReader(br)
	}
	c := &wsConn{nc: nc, mask: uint32(time.Now().UnixNano()) | 1}
	c.fr.br = bufio.NewReaderSize(rd, readBuf)
	return c, nil
}

func (c *wsConn) nextKey() [4]byte {
	x := c.mask
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	c.mask = x
	return [4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}
}

// write sends one frame; the payload is copied, so it may be a view into
// the read buffer (a ping's payload echoed in a pong).
func (c *wsConn) write(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendClientFrame(c.wbuf[:0], op, payload, c.nextKey())
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not pin a buffer grown by one large frame
	}
	return err
}

// handleControl answers a ping and reports whether the server closed.
func (c *wsConn) handleControl(op ws.OpCode, p []byte) (closed bool, code ws.StatusCode) {
	switch op {
	case ws.OpPing:
		_ = c.write(ws.OpPong, p)
	case ws.OpClose:
		if len(p) >= 2 {
			code = ws.StatusCode(uint16(p[0])<<8 | uint16(p[1]))
		}
		_ = c.write(ws.OpClose, p[:min(len(p), 2)])
		return true, code
	}
	return false, 0
}

func (c *wsConn) close() { _ = c.nc.Close() }

// sourceAddr picks the local address for the ordinal-th connection to the
// destination of rawURL. Linux has about 28,000 ephemeral ports per
// (source, destination) pair, so past perSource connections to one loopback
// destination the dials are spread over 127.0.0.2, 127.0.0.3, ...; other
// destinations are dialled from the default address.
func sourceAddr(rawURL string, ordinal, perDest int) *net.TCPAddr {
	const perSource = 25000
	if perDest <= perSource || !loopbackV4(rawURL) {
		return nil
	}
	n := 2 + ordinal/perSource
	if n > 254 {
		n = 2 + ordinal/perSource%253
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}
}

// loopbackV4 reports whether rawURL's host is an IPv4 loopback address,
// which may be dialled from any other 127.x address.
func loopbackV4(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback() && ip.To4() != nil
}
