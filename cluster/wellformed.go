package cluster

import (
	"encoding/binary"
	"errors"
)

// errBadMsgpack is why a body failed the well-formedness walk.
var errBadMsgpack = errors.New("msgpack body is not well formed")

// maxMsgpackDepth bounds nesting; our messages are two levels deep.
const maxMsgpackDepth = 16

// checkMsgpack walks one msgpack value in b without decoding it and checks
// that every length and count fits in the bytes that are actually there,
// that nesting stays shallow, and that nothing follows the value. The
// msgpack library trusts declared sizes (a 40-byte frame can announce a
// 3 GB string and a 12,000-entry map), so untrusted bodies pass this walk
// before they are decoded; the walk itself is O(len(b)) with no allocation,
// because every declared element needs at least one byte of input.
func checkMsgpack(b []byte) error {
	pending := 1 // values still to read at the current and outer levels
	var stack [maxMsgpackDepth]int
	depth := 0
	i := 0
	for pending > 0 || depth > 0 {
		if pending == 0 {
			depth--
			pending = stack[depth]
			continue
		}
		if i >= len(b) {
			return errBadMsgpack
		}
		pending--
		skip, children, ok := msgpackItem(b[i:])
		if !ok || skip > len(b)-i {
			return errBadMsgpack
		}
		i += skip
		if children > 0 {
			if children > len(b)-i || depth == maxMsgpackDepth {
				return errBadMsgpack
			}
			stack[depth] = pending
			depth++
			pending = children
		}
	}
	if i != len(b) {
		return errBadMsgpack
	}
	return nil
}

// msgpackItem returns how many bytes the item at the start of b takes
// itself (header plus any str/bin/ext payload) and how many child values
// follow it (array elements, or twice the map entries).
func msgpackItem(b []byte) (skip, children int, ok bool) {
	c := b[0]
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		return 1, 0, true
	case c >= 0x80 && c <= 0x8f: // fixmap
		return 1, 2 * int(c&0x0f), true
	case c >= 0x90 && c <= 0x9f: // fixarray
		return 1, int(c & 0x0f), true
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return 1 + int(c&0x1f), 0, true
	}
	size := func(n int) (int, bool) {
		if len(b) < 1+n {
			return 0, false
		}
		switch n {
		case 1:
			return int(b[1]), true
		case 2:
			return int(binary.BigEndian.Uint16(b[1:])), true
		default:
			v := binary.BigEndian.Uint32(b[1:])
			return int(v), uint64(v) <= uint64(len(b))
		}
	}
	var n int
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return 2, 0, true
	case 0xcd, 0xd1:
		return 3, 0, true
	case 0xca, 0xce, 0xd2:
		return 5, 0, true
	case 0xcb, 0xcf, 0xd3:
		return 9, 0, true
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
		return 2 + 1<<(c-0xd4), 0, true
	case 0xc4, 0xd9: // bin8, str8
		n, ok = size(1)
		return 2 + n, 0, ok
	case 0xc5, 0xda:
		n, ok = size(2)
		return 3 + n, 0, ok
	case 0xc6, 0xdb:
		n, ok = size(4)
		return 5 + n, 0, ok
	case 0xc7: // ext8: size, type, data
		n, ok = size(1)
		return 3 + n, 0, ok
	case 0xc8:
		n, ok = size(2)
		return 4 + n, 0, ok
	case 0xc9:
		n, ok = size(4)
		return 6 + n, 0, ok
	case 0xdc: // array16
		n, ok = size(2)
		return 3, n, ok
	case 0xdd:
		n, ok = size(4)
		return 5, n, ok
	case 0xde: // map16
		n, ok = size(2)
		return 3, 2 * n, ok
	case 0xdf:
		n, ok = size(4)
		return 5, 2 * n, ok
	}
	return 0, 0, false // 0xc1 is never used
}
