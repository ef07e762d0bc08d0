package transport

import "encoding/binary"

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

const (
	finBit  = 0x80
	rsvBits = 0x70
	maskBit = 0x80
	// maxControlPayload is the RFC limit for close, ping and pong payloads.
	maxControlPayload = 125
)

// NewTextFrame allocates one slice holding an unmasked FIN text frame header
// followed by payloadLen bytes, and returns it and the payload sub-slice for
// the caller to fill. Encode once, Send the same frame to every recipient;
// after the first Send it must not be modified.
func NewTextFrame(payloadLen int) (frame, payload []byte) {
	return newFrame(opText, payloadLen)
}

// newFrame builds an unmasked FIN frame of opcode op with room for n bytes.
func newFrame(op byte, n int) (frame, payload []byte) {
	hdr := headerSize(n)
	frame = make([]byte, hdr+n)
	frame[0] = finBit | op
	switch hdr {
	case 2:
		frame[1] = byte(n)
	case 4:
		frame[1] = 126
		binary.BigEndian.PutUint16(frame[2:], uint16(n))
	default:
		frame[1] = 127
		binary.BigEndian.PutUint64(frame[2:], uint64(n))
	}
	return frame, frame[hdr:]
}

// headerSize is the size of an unmasked header for an n-byte payload.
func headerSize(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// controlFrame builds a ping, pong or close frame; p is cut to 125 bytes.
func controlFrame(op byte, p []byte) []byte {
	p = p[:min(len(p), maxControlPayload)]
	f, dst := newFrame(op, len(p))
	copy(dst, p)
	return f
}

// closeFrame builds a close frame. Codes that must not go on the wire (1005,
// 1006) give an empty close frame. The reason is cut to fit 125 bytes.
func closeFrame(code StatusCode, reason string) []byte {
	if code == CloseNoStatus || code == CloseAbnormal || code == 0 {
		return controlFrame(opClose, nil)
	}
	reason = reason[:min(len(reason), maxControlPayload-2)]
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return controlFrame(opClose, p)
}
