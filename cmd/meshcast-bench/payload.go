package main

import (
	"bytes"
	"strconv"
)

// appendPayload appends the publish data object
// {"t":<unix nanos>,"s":<seq>,"p":<publisher>,"x":"<padding>"} padded with
// 'x' so that it is size bytes long (longer if size is too small to hold
// the fields). Padding is plain ASCII so the bytes need no JSON escaping.
func appendPayload(dst []byte, t int64, s uint64, p int, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, `,"s":`...)
	dst = strconv.AppendUint(dst, s, 10)
	dst = append(dst, `,"p":`...)
	dst = strconv.AppendInt(dst, int64(p), 10)
	dst = append(dst, `,"x":"`...)
	for pad := size - (len(dst) - start) - 2; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

var (
	keyData = []byte(`"data":`)
	keyT    = []byte(`"t":`)
	keyS    = []byte(`"s":`)
	keyP    = []byte(`"p":`)
)

// scanPayload finds t, s and p in a delivery frame (a whole
// {"op":"msg",...,"data":{...}} object, a Socket.IO event, or the bare
// payload) by byte scanning: no JSON decoding and no allocation, because it
// runs once per delivery. ok is false if any field is missing or malformed.
func scanPayload(b []byte) (t int64, s uint64, p int, ok bool) {
	if i := bytes.Index(b, keyData); i >= 0 {
		b = b[i+len(keyData):]
	}
	tv, ok1 := scanUint(b, keyT)
	sv, ok2 := scanUint(b, keyS)
	pv, ok3 := scanUint(b, keyP)
	if !ok1 || !ok2 || !ok3 || tv > 1<<62 || pv > 1<<30 {
		return 0, 0, 0, false
	}
	return int64(tv), sv, int(pv), true
}

// scanUint finds key in b and parses the unsigned decimal after it,
// skipping spaces a re-encoding server might add.
func scanUint(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	var v uint64
	n := 0
	for ; n < len(b) && n < 20; n++ {
		c := b[n]
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
	}
	return v, n > 0 && n < 20
}

// opOf returns the first byte of the "op" value of a v1 server frame
// ('h'ello, 'a'ck, 'e'rr, 'm'sg), or 0.
func opOf(b []byte) byte {
	i := bytes.Index(b, []byte(`"op":"`))
	if i < 0 || i+6 >= len(b) {
		return 0
	}
	return b[i+6]
}
