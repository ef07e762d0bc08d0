package transport

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

const fuzzMax = 300

// event is what a sink saw: one message or control frame.
type event struct {
	op      byte
	payload string
}

// sinkRecorder checks the parser's promises on every call.
type sinkRecorder struct {
	t      *testing.T
	events []event
}

func (s *sinkRecorder) handleFrame(op byte, payload []byte) error {
	switch {
	case op == opText && (len(payload) > fuzzMax || !utf8.Valid(payload)):
		s.t.Fatalf("accepted text of %d bytes (valid UTF-8 %v)", len(payload), utf8.Valid(payload))
	case op != opText && len(payload) > maxControlPayload:
		s.t.Fatalf("accepted control frame of %d bytes", len(payload))
	}
	s.events = append(s.events, event{op, string(payload)})
	if op == opClose {
		return errStop
	}
	return nil
}

// run feeds data in chunks cut at the given sizes and returns what came out.
func runParser(t *testing.T, data []byte, cuts []int) ([]event, StatusCode) {
	p := &parser{max: fuzzMax}
	s := &sinkRecorder{t: t}
	data = slices.Clone(data) // feed unmasks in place
	for len(data) > 0 {
		n := len(data)
		if len(cuts) > 0 {
			n, cuts = min(max(cuts[0], 1), n), cuts[1:]
		}
		_, err := p.feed(data[:n], s)
		if len(p.partial) > fuzzMax+14 || len(p.msg) > fuzzMax {
			t.Fatalf("buffered %d partial + %d message bytes, limit %d", len(p.partial), len(p.msg), fuzzMax)
		}
		if errors.Is(err, errStop) {
			return s.events, CloseNormal
		}
		var ce *CloseError
		if errors.As(err, &ce) {
			return s.events, ce.Code
		}
		if err != nil {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		data = data[n:]
	}
	return s.events, 0
}

func compile(fs ...ws.Frame) []byte {
	var out []byte
	for _, f := range fs {
		b, err := ws.CompileFrame(ws.MaskFrame(f))
		if err != nil {
			panic(err)
		}
		out = append(out, b...)
	}
	return out
}

func FuzzFrameParser(f *testing.F) {
	f.Add(compile(ws.NewTextFrame([]byte("hello"))), uint64(1))
	f.Add(compile(
		ws.NewFrame(ws.OpText, false, []byte("he")),
		ws.NewPingFrame([]byte("p")),
		ws.NewFrame(ws.OpContinuation, true, []byte("llo")),
	), uint64(2))
	f.Add(compile(ws.NewTextFrame(make([]byte, 200)), ws.NewTextFrame(make([]byte, 70000))), uint64(3))
	f.Add(compile(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "bye"))), uint64(4))
	f.Add(compile(ws.NewBinaryFrame([]byte{1})), uint64(5))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 2, 3, 4}, uint64(6))
	f.Add(compile(ws.NewTextFrame([]byte("\xff"))), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		whole, wholeErr := runParser(t, data, nil)
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		var cuts []int
		for n := 0; n < len(data); {
			c := 1 + rng.IntN(20)
			cuts = append(cuts, c)
			n += c
		}
		split, splitErr := runParser(t, data, cuts)
		if wholeErr != splitErr || !slices.Equal(whole, split) {
			t.Fatalf("whole: %v %d\nsplit: %v %d", whole, wholeErr, split, splitErr)
		}
	})
}

func TestParserByteByByte(t *testing.T) {
	t.Parallel()
	data := compile(
		ws.NewFrame(ws.OpText, false, []byte("frag")),
		ws.NewPongFrame(nil),
		ws.NewFrame(ws.OpContinuation, true, []byte("ment")),
		ws.NewTextFrame(make([]byte, 200)), // 16-bit length
	)
	cuts := make([]int, len(data))
	for i := range cuts {
		cuts[i] = 1
	}
	events, code := runParser(t, data, cuts)
	want := []event{{opPong, ""}, {opText, "fragment"}, {opText, string(make([]byte, 200))}}
	if code != 0 || !slices.Equal(events, want) {
		t.Fatalf("got %v (code %d), want %v", events, code, want)
	}
}

func TestCheckClosePayload(t *testing.T) {
	t.Parallel()
	body := func(code uint16, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, code), reason...)
	}
	cases := []struct {
		name    string
		payload []byte
		want    StatusCode // 0: accepted
	}{
		{"empty", nil, 0},
		{"normal", body(1000, "bye"), 0},
		{"1003", body(1003, ""), 0},
		{"1007", body(1007, ""), 0},
		// 1012-1014 are registered codes that ws.CheckCloseFrameData refuses.
		{"service restart", body(1012, ""), 0},
		{"bad gateway", body(1014, ""), 0},
		{"application", body(3000, ""), 0},
		{"private", body(4999, ""), 0},
		{"one byte", []byte{0x03}, CloseProtocolError},
		{"not in use", body(999, ""), CloseProtocolError},
		{"1004", body(1004, ""), CloseProtocolError},
		{"no status", body(1005, ""), CloseProtocolError},
		{"abnormal", body(1006, ""), CloseProtocolError},
		{"tls handshake", body(1015, ""), CloseProtocolError},
		{"unassigned protocol range", body(2999, ""), CloseProtocolError},
		// Codes from 5000 up are undefined; ws.CheckCloseFrameData accepts them.
		{"5000", body(5000, ""), CloseProtocolError},
		{"65535", body(65535, ""), CloseProtocolError},
		{"reason not UTF-8", body(1000, "\xff"), CloseInvalidPayload},
	}
	for _, tc := range cases {
		var got StatusCode
		if err := checkClosePayload(tc.payload); err != nil {
			var ce *CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: error %T %v, want *CloseError", tc.name, err, err)
			}
			got = ce.Code
		}
		if got != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got, tc.want)
		}
	}
}
