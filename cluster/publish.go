package cluster

import (
	"encoding/binary"
	"fmt"

	"github.com/meshcast/meshcast/internal/relay"
)

// The publish body is the msgpack array [channel str, payload bin], or
// [channel str, except str, payload bin] when a client id is to be left
// out, encoded by hand: it is the hot path (once per publish, shared by
// every link) and its decoder must not allocate. Any msgpack library reads
// it. The payload comes last so that a frame is a small head followed by
// the publish's data as the hub encoded it, never copied (qframe).

// publishHead encodes everything of a publish frame but the payload bytes,
// which the link writes right after it.
func publishHead(ch string, data []byte, except string) []byte {
	n := 1 + 1 + strHeaderLen(len(ch)) + len(ch) + binHeaderLen(len(data))
	if except != "" {
		n += strHeaderLen(len(except)) + len(except)
	}
	b := make([]byte, headerLen, headerLen+n)
	binary.BigEndian.PutUint32(b, uint32(n+len(data)))
	if except == "" {
		b = append(b, byte(framePublish), 0x92) // fixarray of 2
		b = appendStr(b, ch)
	} else {
		b = append(b, byte(framePublish), 0x93)
		b = appendStr(b, ch)
		b = appendStr(b, except)
	}
	return appendBinHeader(b, len(data))
}

// stampedHead is publishHead for a publish on a channel with history: the
// body is [ch str, except str, stream uint, seq uint, time int, payload
// bin], payload last as in every publish.
func stampedHead(ch string, data []byte, except string, st *relay.Stamp) []byte {
	n := 1 + 1 + strHeaderLen(len(ch)) + len(ch) + strHeaderLen(len(except)) + len(except) +
		9 + 9 + 9 + binHeaderLen(len(data))
	b := make([]byte, headerLen, headerLen+n)
	b = append(b, byte(frameStamped), 0x96) // fixarray of 6
	b = appendStr(b, ch)
	b = appendStr(b, except)
	b = append(b, 0xcf)
	b = binary.BigEndian.AppendUint64(b, st.Stream)
	b = append(b, 0xcf)
	b = binary.BigEndian.AppendUint64(b, st.Seq)
	b = append(b, 0xd3)
	b = binary.BigEndian.AppendUint64(b, uint64(st.Time))
	b = appendBinHeader(b, len(data))
	binary.BigEndian.PutUint32(b, uint32(len(b)-headerLen+len(data)))
	return b
}

// decodeStamped splits a stamped publish body into slices of body.
func decodeStamped(body []byte) (ch, data, except []byte, st relay.Stamp, err error) {
	if len(body) < 1 || body[0] != 0x96 {
		return nil, nil, nil, st, fmt.Errorf("%w: stamped publish is not a 6-array", errMalformed)
	}
	rest := body[1:]
	if ch, rest, err = readStr(rest); err != nil {
		return nil, nil, nil, st, err
	}
	if except, rest, err = readStr(rest); err != nil {
		return nil, nil, nil, st, err
	}
	var t uint64
	for _, v := range []*uint64{&st.Stream, &st.Seq, &t} {
		if len(rest) < 9 || (rest[0] != 0xcf && rest[0] != 0xd3) {
			return nil, nil, nil, st, fmt.Errorf("%w: stamp is not three 64-bit integers", errMalformed)
		}
		*v, rest = binary.BigEndian.Uint64(rest[1:9]), rest[9:]
	}
	st.Time = int64(t)
	if st.Stream == 0 || st.Seq == 0 {
		return nil, nil, nil, st, fmt.Errorf("%w: stamp with a zero stream or seq", errMalformed)
	}
	if data, rest, err = readBin(rest); err != nil {
		return nil, nil, nil, st, err
	}
	if len(rest) != 0 {
		return nil, nil, nil, st, fmt.Errorf("%w: %d trailing bytes after a stamped publish", errMalformed, len(rest))
	}
	return ch, data, except, st, nil
}

// publishFrame is a whole publish frame in one slice (tests, fuzzing).
func publishFrame(ch string, data []byte, except string) []byte {
	return append(publishHead(ch, data, except), data...)
}

func strHeaderLen(n int) int {
	switch {
	case n < 32:
		return 1
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

func binHeaderLen(n int) int {
	switch {
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = append(b, 0xda)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0xdb)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n < 1<<8:
		return append(b, 0xc4, byte(n))
	case n < 1<<16:
		b = append(b, 0xc5)
		return binary.BigEndian.AppendUint16(b, uint16(n))
	}
	b = append(b, 0xc6)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// decodePublish splits a publish body into slices of body (no copies).
func decodePublish(body []byte) (ch, data, except []byte, err error) {
	if len(body) < 1 || (body[0] != 0x92 && body[0] != 0x93) {
		return nil, nil, nil, fmt.Errorf("%w: publish is not a 2- or 3-array", errMalformed)
	}
	rest := body[1:]
	if ch, rest, err = readStr(rest); err != nil {
		return nil, nil, nil, err
	}
	if body[0] == 0x93 {
		if except, rest, err = readStr(rest); err != nil {
			return nil, nil, nil, err
		}
	}
	if data, rest, err = readBin(rest); err != nil {
		return nil, nil, nil, err
	}
	if len(rest) != 0 {
		return nil, nil, nil, fmt.Errorf("%w: %d trailing bytes after publish", errMalformed, len(rest))
	}
	return ch, data, except, nil
}

// readStr reads any msgpack str format.
func readStr(b []byte) (s, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: missing str", errMalformed)
	}
	var n, h int
	switch c := b[0]; {
	case c&0xe0 == 0xa0:
		n, h = int(c&0x1f), 1
	case c == 0xd9:
		n, h, err = lenField(b, 1)
	case c == 0xda:
		n, h, err = lenField(b, 2)
	case c == 0xdb:
		n, h, err = lenField(b, 4)
	default:
		return nil, nil, fmt.Errorf("%w: want str, got 0x%02x", errMalformed, c)
	}
	if err != nil {
		return nil, nil, err
	}
	return take(b, h, n)
}

// readBin reads any msgpack bin format.
func readBin(b []byte) (p, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: missing bin", errMalformed)
	}
	var n, h int
	switch b[0] {
	case 0xc4:
		n, h, err = lenField(b, 1)
	case 0xc5:
		n, h, err = lenField(b, 2)
	case 0xc6:
		n, h, err = lenField(b, 4)
	default:
		return nil, nil, fmt.Errorf("%w: want bin, got 0x%02x", errMalformed, b[0])
	}
	if err != nil {
		return nil, nil, err
	}
	return take(b, h, n)
}

// lenField reads a big-endian length of width bytes after the format byte.
func lenField(b []byte, width int) (n, h int, err error) {
	if len(b) < 1+width {
		return 0, 0, fmt.Errorf("%w: truncated length", errMalformed)
	}
	var v uint64
	for _, c := range b[1 : 1+width] {
		v = v<<8 | uint64(c)
	}
	if v > uint64(len(b)) { // also keeps int conversion safe
		return 0, 0, fmt.Errorf("%w: length %d beyond frame", errMalformed, v)
	}
	return int(v), 1 + width, nil
}

func take(b []byte, h, n int) (v, rest []byte, err error) {
	if len(b)-h < n {
		return nil, nil, fmt.Errorf("%w: truncated value", errMalformed)
	}
	return b[h : h+n], b[h+n:], nil
}
