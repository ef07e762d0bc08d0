package cluster

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckMsgpack(t *testing.T) {
	good := []any{
		nil, true, 1, -1, 300, -300, 1 << 40, 1.5, "x", string(make([]byte, 300)), []byte{1, 2},
		[]any{1, "a", []any{}}, map[string]any{"c": "chat", "s": uint64(7), "n": map[string]any{"x": []int{1, 2, 3}}},
		helloMsg{ProtocolVersion, "meshcast", "node", make([]byte, nonceLen)},
	}
	for _, v := range good {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkMsgpack(b); err != nil {
			t.Errorf("%#v (% x): %v", v, b, err)
		}
		for cut := 0; cut < len(b); cut++ {
			if checkMsgpack(b[:cut]) == nil {
				t.Errorf("%#v truncated to %d bytes passed", v, cut)
			}
		}
		if checkMsgpack(append(b, 0)) == nil {
			t.Errorf("%#v with a trailing byte passed", v)
		}
	}
	for _, bad := range [][]byte{
		{0xc9, 0xc9, 0xc9, 0xc9, 0x30, 0x01}, // ext32 claiming 3 GB
		{0xde, 0x30, 0x30, 0x01},             // map16 of 12,336 entries in 1 byte
		{0xdd, 0xff, 0xff, 0xff, 0xff},       // array32 of 4G elements
		{0xdb, 0x00, 0x00, 0x10, 0x00, 'a'},  // str32 longer than the input
		{0xc1},                               // never used
		append(make([]byte, 0), 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x01), // too deep
	} {
		if checkMsgpack(bad) == nil {
			t.Errorf("% x passed", bad)
		}
	}
}

// FuzzCheckMsgpack feeds what the walk accepts to the library, into a
// generic value and into every message type: errors are fine, a panic or
// a runaway allocation (which kills the fuzz worker) is not.
func FuzzCheckMsgpack(f *testing.F) {
	for _, v := range []any{map[string]any{"c": []any{"a", 1}}, []byte("xyz"), 3.5, snapshotMsg{Seq: 3, Chs: []string{"a"}}} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkMsgpack(b) != nil {
			return
		}
		var v any
		_ = msgpack.Unmarshal(b, &v)
		for _, m := range []any{&helloMsg{}, &proofMsg{}, &interestMsg{}, &snapshotMsg{}, &ackMsg{}, &nodeMeta{}} {
			_ = msgpack.Unmarshal(b, m)
		}
	})
}
