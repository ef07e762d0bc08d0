package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
)

// maxMessage bounds a reassembled server message; the bench never expects
// more than a few KiB, so anything larger is a protocol error, not a reason
// to allocate.
const maxMessage = 1 << 22

var (
	errFrameTooLarge = errors.New("frame too large")
	errBadFrame      = errors.New("bad frame")
)

// frameReader parses WebSocket frames from a server. It exists instead of
// gobwas/wsutil because a subscriber reads hundreds of thousands of frames a
// second: the payload is returned as a view into the bufio buffer (valid
// until the next call), so reading allocates nothing.
type frameReader struct {
	br     *bufio.Reader
	msg    []byte    // reassembly buffer for fragmented or oversized messages
	fragOp ws.OpCode // opcode of the message being reassembled, 0 if none
}

// next returns the next complete data message or control frame.
func (r *frameReader) next() (ws.OpCode, []byte, error) {
	for {
		fin, op, payload, err := r.frame()
		if err != nil {
			return 0, nil, err
		}
		if op.IsControl() {
			if !fin || len(payload) > 125 {
				return 0, nil, fmt.Errorf("control frame: %w", errBadFrame)
			}
			return op, payload, nil
		}
		switch {
		case op == ws.OpContinuation && r.fragOp == 0:
			return 0, nil, fmt.Errorf("unexpected continuation: %w", errBadFrame)
		case op != ws.OpContinuation && r.fragOp != 0:
			return 0, nil, fmt.Errorf("interleaved data frames: %w", errBadFrame)
		case op != ws.OpContinuation && fin:
			return op, payload, nil
		case op != ws.OpContinuation:
			r.fragOp = op
			r.msg = append(r.msg[:0], payload...)
			continue
		}
		if len(r.msg)+len(payload) > maxMessage {
			return 0, nil, errFrameTooLarge
		}
		r.msg = append(r.msg, payload...)
		if fin {
			op, r.fragOp = r.fragOp, 0
			return op, r.msg, nil
		}
	}
}

// frame reads one frame. Server frames are unmasked; a masked one is
// accepted and unmasked in the reassembly buffer.
func (r *frameReader) frame() (fin bool, op ws.OpCode, payload []byte, err error) {
	h, err := r.br.Peek(2)
	if err != nil {
		return false, 0, nil, err
	}
	if h[0]&0x70 != 0 {
		return false, 0, nil, fmt.Errorf("reserved bits set: %w", errBadFrame)
	}
	fin, op = h[0]&0x80 != 0, ws.OpCode(h[0]&0x0f)
	masked := h[1]&0x80 != 0
	hl, n7 := 2, int(h[1]&0x7f)
	switch n7 {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if masked {
		hl += 4
	}
	if h, err = r.br.Peek(hl); err != nil {
		return false, 0, nil, err
	}
	n := uint64(n7)
	switch n7 {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
	}
	if n > maxMessage {
		return false, 0, nil, errFrameTooLarge
	}
	var key [4]byte
	if masked {
		copy(key[:], h[hl-4:])
	}
	if _, err = r.br.Discard(hl); err != nil {
		return false, 0, nil, err
	}
	payload, err = r.body(int(n), masked)
	if masked && err == nil {
		ws.Cipher(payload, key, 0)
	}
	return fin, op, payload, err
}

// body returns the next n bytes, from the bufio buffer when they fit (no
// copy) and from a reused buffer otherwise. A masked body is always copied
// because unmasking writes to it.
func (r *frameReader) body(n int, copyOut bool) ([]byte, error) {
	if n <= r.br.Size() && !copyOut {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, err
		}
		_, err = r.br.Discard(n)
		return b, err
	}
	// Keep the reassembly prefix intact: the body goes after it.
	base := len(r.msg)
	if r.fragOp == 0 {
		base = 0
	}
	need := base + n
	if cap(r.msg) < need {
		nb := make([]byte, base, need)
		copy(nb, r.msg[:base])
		r.msg = nb
	}
	buf := r.msg[base:need]
	for got := 0; got < n; {
		m, err := r.br.Read(buf[got:])
		got += m
		if err != nil && got < n {
			return nil, err
		}
	}
	return buf, nil
}

// appendClientFrame appends one final, masked client frame. The mask key
// must be unpredictable to intermediaries per RFC 6455; the caller's
// per-connection generator is enough for a load tool.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte, key [4]byte) []byte {
	dst = append(dst, 0x80|byte(op))
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], key, 0)
	return dst
}
