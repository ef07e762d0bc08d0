package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/meshcast/meshcast/internal/relay"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzPublishCodec checks the hand-written publish, stamped publish and
// interest codecs (publish.go, frame.go): whatever is encoded decodes to
// the same values through a frame reader, and whatever body the decoders
// accept from a peer is msgpack that the library reads as the same values
// (the bodies are documented as plain msgpack).
func FuzzPublishCodec(f *testing.F) {
	f.Add("room", []byte("hello"), "", uint64(7), uint64(2), int64(99), []byte{})
	f.Add("", []byte{}, "client-7", uint64(1), uint64(1), int64(-1), publishFrame("a", []byte("x"), "e")[headerLen+1:])
	f.Add(string(make([]byte, 40)), make([]byte, 300), string(make([]byte, 300)), uint64(0), uint64(3), int64(0),
		append(stampedHead("room", []byte("hi"), "c1", &relay.Stamp{Stream: 7, Seq: 2, Time: 99}), "hi"...)[headerLen+1:])
	f.Add("r", []byte{1}, "", uint64(1<<63), uint64(1), int64(1), []byte{0x92, 0xd9, 1, 'a', 0xc4, 0})
	f.Fuzz(func(t *testing.T, ch string, data []byte, except string, stream, seq uint64, tm int64, body []byte) {
		// Encode, frame, read back.
		pub := publishFrame(ch, data, except)
		typ, got := readOneFrame(t, pub)
		gch, gdata, gexcept, err := decodePublish(got)
		if typ != framePublish || err != nil || string(gch) != ch || !bytes.Equal(gdata, data) || string(gexcept) != except {
			t.Fatalf("publish %q %q %q read back as %d %q %q %q, %v", ch, data, except, typ, gch, gdata, gexcept, err)
		}
		st := relay.Stamp{Stream: stream, Seq: seq, Time: tm}
		stamped := append(stampedHead(ch, data, except, &st), data...)
		typ, got = readOneFrame(t, stamped)
		gch, gdata, gexcept, gst, err := decodeStamped(got)
		switch {
		case typ != frameStamped:
			t.Fatalf("stamped frame read back as type %d", typ)
		case stream == 0 || seq == 0:
			if err == nil {
				t.Fatalf("stamp %+v with a zero stream or seq accepted", st)
			}
		case err != nil || string(gch) != ch || !bytes.Equal(gdata, data) || string(gexcept) != except || gst != st:
			t.Fatalf("stamped %q %q %q %+v read back as %q %q %q %+v, %v", ch, data, except, st, gch, gdata, gexcept, gst, err)
		}
		for _, presence := range []bool{false, true} {
			typ, got = readOneFrame(t, interestFrameAs(frameAdd, ch, seq, presence))
			var m interestMsg
			if err := decodeMsg(got, &m); typ != frameAdd || err != nil || m != (interestMsg{ch, seq, presence}) {
				t.Fatalf("interest %q %d %v read back as %d %+v, %v", ch, seq, presence, typ, m, err)
			}
		}

		// Arbitrary peer bodies: what the hand decoders take, the library
		// reads the same.
		if ch, data, except, err := decodePublish(body); err == nil {
			var v []any
			if err := msgpack.Unmarshal(body, &v); err != nil {
				t.Fatalf("publish body % x accepted, but is not msgpack: %v", body, err)
			}
			want := []any{string(ch), data}
			if body[0] == 0x93 {
				want = []any{string(ch), string(except), data}
			}
			if !sameMsgpack(v, want) {
				t.Fatalf("publish body % x read as %q %q %q, the library reads %v", body, ch, except, data, v)
			}
		}
		if ch, data, except, st, err := decodeStamped(body); err == nil {
			var v []any
			if err := msgpack.Unmarshal(body, &v); err != nil {
				t.Fatalf("stamped body % x accepted, but is not msgpack: %v", body, err)
			}
			if !sameMsgpack(v, []any{string(ch), string(except), st.Stream, st.Seq, st.Time, data}) {
				t.Fatalf("stamped body % x read as %q %q %+v %q, the library reads %v", body, ch, except, st, data, v)
			}
		}
	})
}

// readOneFrame reads f as a link does and checks it is one whole frame.
func readOneFrame(t *testing.T, f []byte) (frameType, []byte) {
	t.Helper()
	if n := binary.BigEndian.Uint32(f); int(n) != len(f)-headerLen {
		t.Fatalf("length prefix %d for a frame of %d bytes", n, len(f)-headerLen)
	}
	fr := newFrameReader(bufio.NewReaderSize(bytes.NewReader(f), 64), len(f))
	typ, body, err := fr.next()
	if err != nil {
		t.Fatalf("frame % x: %v", f[:min(len(f), 16)], err)
	}
	return typ, bytes.Clone(body)
}

// sameMsgpack compares what the library decoded with the values wanted;
// integers compare by value, whatever width the library chose.
func sameMsgpack(got, want []any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		switch w := want[i].(type) {
		case []byte:
			g, ok := got[i].([]byte)
			if !ok || !bytes.Equal(g, w) {
				return false
			}
		case string:
			if g, ok := got[i].(string); !ok || g != w {
				return false
			}
		case uint64:
			if g, ok := asUint(got[i]); !ok || g != w {
				return false
			}
		case int64:
			if g, ok := asUint(got[i]); !ok || int64(g) != w {
				return false
			}
		}
	}
	return true
}

// asUint reads the 64-bit integers of a stamp (0xcf or 0xd3).
func asUint(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint64:
		return n, true
	case int64:
		return uint64(n), true
	}
	return 0, false
}
