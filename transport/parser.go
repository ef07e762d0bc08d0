package transport

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// frameSink receives what the parser decodes. payload is only valid during
// the call. A non-nil error stops parsing and is returned by feed.
type frameSink interface {
	// handleFrame gets complete text messages (opText, reassembled and
	// UTF-8 checked) and control frames (opPing, opPong, opClose).
	handleFrame(op byte, payload []byte) error
}

// errStop is returned by a sink that wants parsing to end (after a close).
var errStop = errors.New("transport: stop parsing")

// parser is an incremental decoder of client frames. It unmasks payloads in
// place (the input must be writable and owned by the caller) and keeps only
// the leftover bytes of an incomplete frame and the fragments of an
// unfinished message, in buffers that exist only while there are any. The
// zero value with max set is ready.
type parser struct {
	max     int    // MaxMessageSize
	partial []byte // bytes of one incomplete frame; nil otherwise
	msg     []byte // fragments of an open text message; nil otherwise
	open    bool   // a fragmented message is open
}

// header is a parsed client frame header.
type header struct {
	fin    bool
	op     byte
	length int
	mask   [4]byte
	size   int // bytes of the header itself
}

// feed decodes data, calling sink for each complete message or control frame.
// It returns the number of complete frames (the one that failed included)
// and the first error: a *CloseError for protocol violations, or the sink's
// error.
func (p *parser) feed(data []byte, sink frameSink) (frames int, err error) {
	if len(p.partial) > 0 {
		var done bool
		data, done, err = p.fillPartial(data, sink)
		if err != nil || !done {
			return btoi(done), err
		}
		frames++
	}
	for len(data) > 0 {
		h, ok, err := p.parseHeader(data)
		if err != nil {
			return frames, err
		}
		if !ok || len(data) < h.size+h.length {
			// Keep a copy: data belongs to the caller's (pooled) buffer.
			p.partial = append([]byte(nil), data...)
			return frames, nil
		}
		end := h.size + h.length
		if err := p.frame(h, data[h.size:end], sink); err != nil {
			return frames + 1, err
		}
		frames++
		data = data[end:]
	}
	return frames, nil
}

// fillPartial moves bytes from data to p.partial until its frame is whole
// (then handles it) or data runs out. It returns the unused rest of data.
func (p *parser) fillPartial(data []byte, sink frameSink) (rest []byte, done bool, err error) {
	for {
		h, ok, err := p.parseHeader(p.partial)
		if err != nil {
			return nil, false, err
		}
		if ok && len(p.partial) == h.size+h.length {
			err := p.frame(h, p.partial[h.size:], sink)
			p.partial = nil
			return data, true, err
		}
		if len(data) == 0 {
			return nil, false, nil
		}
		// Until the header is whole take only header bytes: its size is known
		// after two bytes, and the frame may be shorter than a full header.
		need := max(2, h.size) - len(p.partial)
		if ok {
			need = h.size + h.length - len(p.partial)
		}
		n := min(need, len(data))
		p.partial = append(p.partial, data[:n]...)
		data = data[n:]
	}
}

// parseHeader decodes and checks the header at the start of b. ok is false
// when b does not hold the whole header yet. Checks that need only the first
// two bytes run as soon as they are there.
func (p *parser) parseHeader(b []byte) (h header, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	h.fin = b[0]&finBit != 0
	h.op = b[0] & 0x0F
	if err := p.checkStart(b[0], b[1]); err != nil {
		return h, false, err
	}
	h.size = 2
	n := int(b[1] & 0x7F)
	switch n {
	case 126:
		h.size += 2
	case 127:
		h.size += 8
	}
	h.size += 4
	if len(b) < h.size {
		return h, false, nil
	}
	switch n {
	case 126:
		n = int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u > 1<<62 {
			return h, false, protoErr(CloseProtocolError, "invalid frame length")
		}
		if u > uint64(p.max) {
			return h, false, protoErr(CloseTooBig, "message too big")
		}
		n = int(u)
	}
	h.length = n
	copy(h.mask[:], b[h.size-4:h.size])
	return h, true, p.checkLength(h)
}

// checkStart applies the rules visible in the first two header bytes, so
// they run before the rest of the header has arrived: gobwas's
// ws.CheckHeader for a server without extensions (RSV bits, masking,
// reserved opcodes, control frames, fragmentation; its message is the 1002
// reason), then our refusal of binary messages with 1003. CheckHeader reads
// Length only for control frames, whose 7-bit length is their whole length
// (126 and 127, the markers of longer lengths, are over the limit too).
func (p *parser) checkStart(b0, b1 byte) error {
	h := ws.Header{
		Fin:    b0&finBit != 0,
		Rsv:    (b0 & rsvBits) >> 4,
		OpCode: ws.OpCode(b0 & 0x0F),
		Masked: b1&maskBit != 0,
		Length: int64(b1 & 0x7F),
	}
	state := ws.StateServerSide
	// A binary frame gets 1003 even inside a fragmented text message, as it
	// always did (docs/protocol.md: 1003 for a binary message); in the
	// fragmented state CheckHeader would call it a fragmentation error, 1002.
	if p.open && h.OpCode != opBinary {
		state = state.Set(ws.StateFragmented)
	}
	if err := ws.CheckHeader(h, state); err != nil {
		return protoErr(CloseProtocolError, err.Error())
	}
	if h.OpCode == opBinary {
		return protoErr(CloseUnsupportedData, "binary messages not supported")
	}
	return nil
}

// checkLength refuses data frames that would make a message over the limit,
// before any of the payload is buffered.
func (p *parser) checkLength(h header) error {
	if h.op >= opClose {
		return nil
	}
	if h.length > p.max-len(p.msg) {
		return protoErr(CloseTooBig, "message too big")
	}
	return nil
}

// frame handles one complete frame whose payload is still masked.
func (p *parser) frame(h header, payload []byte, sink frameSink) error {
	ws.Cipher(payload, h.mask, 0)
	switch h.op {
	case opText:
		if !h.fin {
			p.open = true
			p.msg = append([]byte(nil), payload...)
			return nil
		}
		return deliverText(payload, sink)
	case opContinuation:
		p.msg = append(p.msg, payload...)
		if !h.fin {
			return nil
		}
		msg := p.msg
		p.msg, p.open = nil, false
		return deliverText(msg, sink)
	case opClose:
		if err := checkClosePayload(payload); err != nil {
			return err
		}
	}
	return sink.handleFrame(h.op, payload)
}

func deliverText(msg []byte, sink frameSink) error {
	if !utf8.Valid(msg) {
		return protoErr(CloseInvalidPayload, "text message is not valid UTF-8")
	}
	return sink.handleFrame(opText, msg)
}

// checkClosePayload validates a close frame body: empty, or a valid code
// followed by a UTF-8 reason. It is not gobwas's ws.CheckCloseFrameData,
// which accepts codes from 5000 up (RFC 6455 section 7.4.2 defines none
// there) and refuses 1012-1014 (registered with IANA since: service restart,
// try again later, bad gateway); clients closing with those would be answered
// differently than docs/protocol.md and our tests say.
func checkClosePayload(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) == 1 {
		return protoErr(CloseProtocolError, "close payload of one byte")
	}
	code := binary.BigEndian.Uint16(p)
	valid := (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
		(code >= 3000 && code <= 4999)
	if !valid {
		return protoErr(CloseProtocolError, "invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return protoErr(CloseInvalidPayload, "close reason is not valid UTF-8")
	}
	return nil
}

// parseClose reads the code and reason of a checked close payload.
func parseClose(p []byte) (StatusCode, string) {
	if len(p) < 2 {
		return CloseNoStatus, ""
	}
	return StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
}

// reset drops the buffers of a connection that is done reading.
func (p *parser) reset() {
	p.partial, p.msg, p.open = nil, nil, false
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
