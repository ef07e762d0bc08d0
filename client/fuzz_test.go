package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// FuzzDecodeFrame: any bytes from the server decode to a frame or an
// error, never a panic; a decoded frame has an op.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"hello","client":"c1","node":"n1","user":"ann"}`,
		`{"op":"msg","ch":"chat:a","data":{"t":"hi"},"pos":"AbC-12"}`,
		`{"op":"ack","id":7,"recovered":true}`,
		`{"op":"err","id":8,"code":503,"reason":"cluster unavailable: joining"}`,
		`{"op":"gap","ch":"x"}`,
		`{"op":"history","id":2,"ch":"x","msgs":[{"data":1,"pos":"p1"},{"data":[2],"pos":"p2"}]}`,
		`{"op":"ack","id":-1}`, `{"op":"ack","id":1e99}`, `null`, `[]`, `{"op":1}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err == nil && fr.Op == "" {
			t.Fatalf("decoded %q without an op", b)
		}
	})
}

// chunkReader returns its bytes in pieces of at most n, to exercise
// partial reads.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// sink is a net.Conn that takes every write (pongs, close answers).
type sink struct{ net.Conn }

func (sink) Write(p []byte) (int, error)      { return len(p), nil }
func (sink) SetWriteDeadline(time.Time) error { return nil }
func (sink) SetReadDeadline(time.Time) error  { return nil }
func (sink) Close() error                     { return nil }

// FuzzReadMessages: a raw server byte stream, split anywhere, read by the
// client's frame reader (fragments, control frames, limits): messages or
// an error, never a panic or an oversized message.
func FuzzReadMessages(f *testing.F) {
	frame := func(fr ws.Frame) []byte {
		var b bytes.Buffer
		_ = ws.WriteFrame(&b, fr)
		return b.Bytes()
	}
	hello := frame(ws.NewTextFrame([]byte(`{"op":"hello","client":"c","node":"n"}`)))
	frag := append(frame(ws.Frame{Header: ws.Header{OpCode: ws.OpText, Length: 5}, Payload: []byte(`{"op"`)}),
		frame(ws.NewPingFrame([]byte("p")))...)
	frag = append(frag, frame(ws.Frame{Header: ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: 7}, Payload: []byte(`:"gap"}`)})...)
	closing := frame(ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "token expired")))
	f.Add(append(append(hello, frag...), closing...), uint8(1))
	f.Add(append(hello, frame(ws.NewBinaryFrame([]byte{1, 2}))...), uint8(3))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		cfg := DefaultConfig()
		cfg.MaxMessageSize = 1 << 10
		c := newConn(sink{}, &chunkReader{b: data, n: int(split)%16 + 1}, &cfg)
		for range 64 {
			b, err := c.next()
			if err != nil {
				return
			}
			if int64(len(b)) > cfg.MaxMessageSize {
				t.Fatalf("a message of %d bytes passed the %d limit", len(b), cfg.MaxMessageSize)
			}
			_, _ = decodeFrame(b)
		}
	})
}

// FuzzReadRefusal: the response to a refused upgrade comes from the
// server (or whatever answers at its address): any bytes give a
// *UpgradeError with the status, a body of at most 512 bytes, and a wait of
// at least what Retry-After asks (up to a cap), never a panic.
func FuzzReadRefusal(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n\r\n{\"code\":429,\"reason\":\"slow down\"}",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 9223372036\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n",
		"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nno",
		"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.0 503\r\nRetry-After: -3\r\n\r\n", "garbage",
	} {
		f.Add(503, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		e := readRefusal(status, bytes.NewReader(b))
		if e == nil || e.Status != status {
			t.Fatalf("refusal %+v for status %d", e, status)
		}
		if len(e.Body) > 512 {
			t.Fatalf("kept a body of %d bytes", len(e.Body))
		}
		if e.RetryAfter < 0 {
			t.Fatalf("negative Retry-After wait %v", e.RetryAfter)
		}
		res, err := http.ReadResponse(bufio.NewReader(io.LimitReader(bytes.NewReader(b), 4096)), nil)
		if err != nil {
			return
		}
		s, err := strconv.ParseInt(res.Header.Get("Retry-After"), 10, 64)
		if (err != nil && !errors.Is(err, strconv.ErrRange)) || s <= 0 {
			return // ErrRange: s is the largest int64, a wait as long as can be
		}
		const capped = 24 * time.Hour // far above any MaxReconnectDelay
		want := capped
		if s < int64(capped/time.Second) {
			want = time.Duration(s) * time.Second
		}
		if e.RetryAfter < want {
			t.Fatalf("Retry-After: %d read as a wait of %v", s, e.RetryAfter)
		}
	})
}
